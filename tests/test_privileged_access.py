"""Privileged access under control (issue 15 item 1, docs/security.md "Privileged access"): no one grants
themselves access by restricting a case, a restriction keeps someone who works the case (or hands the work
on), and tasks of a restricted case go only to people named on it. On SQLite and PostgreSQL (`db_url`)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.access import can_open_case, restrict_case
from engine.schema import tasks
from tests.front_door_world import as_role, build
from tests.test_api_admin import tm_user


@pytest.fixture
def world(db_url):
    eng, app, people = build(db_url)
    yield eng, app, people
    eng.db.dispose()


def _open_tasks(eng, case_id):
    with eng.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(tasks.c.id, tasks.c.team, tasks.c.assignee)
                                                       .where(tasks.c.case_id == case_id))]


def _restricted_events(eng, case_id):
    return [e for e in eng.history(case_id) if e["type"] == "case.restricted"]


def _put(session, case_id, usernames, **extra):
    return session.send("PUT", f"/api/cases/{case_id}/restriction",
                        {"usernames": usernames, "reason": "A relative of staff", **extra})


# ---------------------------------------------------------------------- 1. no self-grant by restricting
def test_an_administrator_cannot_restrict_a_case_to_themselves(world):
    eng, app, p = world
    admin = as_role(app, "administrator")
    for case in (p["edith"], p["edward"]):  # with an open task, and closed
        r = _put(admin, case, ["administrator"])
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [{"field": "usernames", "message": r.json()["errors"][0]["message"]}]
        assert "yourself alone" in r.json()["message"]
        # nor themselves beside someone who works the case: restricting must not open it to them
        r = _put(admin, case, ["administrator", "front-door-advisor"])
        assert r.status_code == 422 and "You cannot name yourself" in r.json()["message"], r.text
        assert _restricted_events(eng, case) == []
        assert can_open_case(eng, tm_user(eng, "administrator"), case)[0] is False
    assert admin.get(f"/api/cases/{p['edith']}").status_code == 403
    # restricting it to the people who work it, without themselves, is what an administrator may do
    assert _put(admin, p["edith"], ["front-door-advisor"]).status_code == 200


def test_a_team_manager_cannot_hide_a_cases_tasks_from_its_team(world):
    eng, app, p = world
    tm, fd = as_role(app, "team_manager"), as_role(app, "front_door_advisor")
    [task] = _open_tasks(eng, p["edith"])
    assert task["team"] == "front_door"
    r = _put(tm, p["edith"], ["team-manager"])
    assert r.status_code == 422 and "yourself alone" in r.json()["message"], r.text
    r = _put(tm, p["edith"], ["team-manager", "social-worker"])  # no one from the front door team
    assert r.status_code == 422, r.text
    assert "Name at least one person from the front door team" in r.json()["message"]
    assert "Record the contact" in r.json()["message"]
    assert _restricted_events(eng, p["edith"]) == []
    assert task["id"] in [t["id"] for t in fd.get("/api/tasks").json()["tasks"]]
    # nor themselves beside only people who work no case, taking the work for themselves: still "alone"
    for others in (["process-owner"], ["administrator"], ["auditor"], ["auditor", "performance"]):
        r = _put(tm, p["edith"], ["team-manager", *others], hand_to="team-manager")
        assert r.status_code == 422 and "yourself alone" in r.json()["message"], (others, r.text)
    closed = p["edward"]  # no open task and no co-ordinating worker: nothing else would stop it
    r = _put(tm, closed, ["team-manager", "administrator"])
    assert r.status_code == 422 and "yourself alone" in r.json()["message"], r.text
    assert _restricted_events(eng, p["edith"]) == _restricted_events(eng, closed) == []
    assert _open_tasks(eng, p["edith"])[0]["assignee"] is None
    # a team manager may name themselves (they may already open the case) with someone from the team
    r = _put(tm, p["edith"], ["team-manager", "front-door-advisor"])
    assert r.status_code == 200, r.text
    assert task["id"] in [t["id"] for t in fd.get("/api/tasks").json()["tasks"]]


def test_the_work_can_be_handed_explicitly_to_someone_named(world):
    eng, app, p = world
    tm = as_role(app, "team_manager")
    [task] = _open_tasks(eng, p["edith"])
    r = _put(tm, p["edith"], ["team-manager", "social-worker"], hand_to="front-door-advisor")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "hand_to", r.text
    assert "must be one of the people named" in r.json()["message"]
    r = _put(tm, p["edith"], ["team-manager", "social-worker", "auditor"], hand_to="auditor")
    assert r.status_code == 422 and "hand it to an active casework user" in r.json()["message"], r.text
    assert _restricted_events(eng, p["edith"]) == [] and _open_tasks(eng, p["edith"])[0]["assignee"] is None
    r = _put(tm, p["edith"], ["team-manager", "social-worker"], hand_to="social-worker")
    assert r.status_code == 200, r.text
    assert _open_tasks(eng, p["edith"])[0]["assignee"] == "social-worker"
    sw = as_role(app, "social_worker")
    assert sw.get(f"/api/tasks/{task['id']}").status_code == 200
    assert task["id"] in [t["id"] for t in sw.get("/api/tasks?scope=mine").json()["tasks"]]
    [ev] = _restricted_events(eng, p["edith"])
    assert (ev["actor"], ev["data"]["handed_to"], ev["data"]["tasks"]) == ("team-manager", "social-worker",
                                                                          [task["id"]])
    assert [e["actor"] for e in eng.history(p["edith"]) if e["type"] == "task.assigned"] == ["team-manager"]


def test_a_task_with_someone_not_named_is_named_or_handed_on(world):
    eng, app, p = world
    from api.auth import create_user

    create_user(eng, "fd2", "a long password", roles=["front_door_advisor"], teams=["front_door"])
    [task] = _open_tasks(eng, p["edith"])
    eng.assign(task["id"], "fd2", actor="team-manager", owner="fd2")
    admin = as_role(app, "administrator")
    r = _put(admin, p["edith"], ["front-door-advisor"])  # in the team, but the task is with fd2
    assert r.status_code == 422, r.text
    assert "“Record the contact” is with fd2, who is not named" in r.json()["message"]
    r = _put(admin, p["edith"], ["front-door-advisor"], hand_to="front-door-advisor")
    assert r.status_code == 200, r.text
    assert _open_tasks(eng, p["edith"])[0]["assignee"] == "front-door-advisor"
    assert _restricted_events(eng, p["edith"])[0]["data"]["tasks"] == [task["id"]]


def test_a_closed_case_keeps_its_coordinating_worker(world):
    eng, app, p = world
    eng.update_case_record(p["edward"], {"coordinating_worker": "social-worker"}, actor="team-manager",
                           reason="Allocated")
    admin = as_role(app, "administrator")
    r = _put(admin, p["edward"], ["occupational-therapist"])
    assert r.status_code == 422 and "co-ordinating worker (social-worker)" in r.json()["message"], r.text
    assert _put(admin, p["edward"], ["social-worker", "occupational-therapist"]).status_code == 200


def test_the_restriction_page_explains_the_refusal_in_an_error_summary(world):
    eng, app, p = world
    from tests.test_pages_intake import signin

    admin, csrf = signin(app, "administrator")
    r = admin.post(f"/admin/restrictions/{p['edith']}", data={
        "csrf_token": csrf, "action": "restrict", "usernames": "administrator", "reason": "Mine"})
    assert r.status_code == 400
    summary = re.search(r'<div class="govuk-error-summary".*?</div>\s*</div>', r.text, re.S).group(0)
    assert "You cannot restrict a case to yourself alone" in summary and 'href="#usernames"' in summary
    r = admin.post(f"/admin/restrictions/{p['edith']}", data={
        "csrf_token": csrf, "action": "restrict", "usernames": "social-worker", "hand_to": "front-door-advisor",
        "reason": "Mine"})
    assert r.status_code == 400 and 'href="#hand_to"' in r.text and 'value="front-door-advisor"' in r.text
    assert _restricted_events(eng, p["edith"]) == []


# ---------------------------------------------------------------------- 3. assignment and delegation
def test_a_restricted_cases_task_goes_only_to_people_named_on_it(world):
    eng, app, p = world
    from api.auth import create_user

    create_user(eng, "fd2", "a long password", roles=["front_door_advisor"], teams=["front_door"])
    create_user(eng, "fd-manager", "a long password", roles=["team_manager"], teams=["front_door"])
    [task] = _open_tasks(eng, p["edith"])
    restrict_case(eng, p["edith"], ["front-door-advisor", "fd-manager"])
    from tests.front_door_world import Api

    mgr = Api(app, "fd-manager", "a long password")
    r = mgr.post(f"/api/tasks/{task['id']}/assign", {"to": "fd2"})
    assert r.status_code == 422, r.text
    assert "fd2 is not named on this case's restriction" in r.json()["message"]
    assert r.json()["errors"] == [{"field": "to", "message": "fd2 is not named on this case's restriction"}]
    assert _open_tasks(eng, p["edith"])[0]["assignee"] is None
    fd = as_role(app, "front_door_advisor")
    assert fd.post(f"/api/tasks/{task['id']}/claim").status_code == 200
    r = fd.post(f"/api/tasks/{task['id']}/delegate", {"to": "fd2"})
    assert r.status_code == 422 and "not named on this case's restriction" in r.json()["message"], r.text
    assert _open_tasks(eng, p["edith"])[0]["assignee"] == "front-door-advisor"
    assert [e for e in eng.history(p["edith"]) if e["type"] == "task.delegated"] == []
    # someone named may still be given it
    assert fd.post(f"/api/tasks/{task['id']}/release").status_code == 200
    assert mgr.post(f"/api/tasks/{task['id']}/assign", {"to": "front-door-advisor"}).status_code == 200


# ---------------------------------------------------------------------- 2. a second administrator for one's own access
def _me(session):
    return session.get("/api/me").json()["user"]


def test_an_administrator_adding_case_access_to_their_own_account_needs_another_administrator(world):
    eng, app, p = world
    from tests.front_door_world import Api

    admin = as_role(app, "administrator")
    r = admin.send("PATCH", "/api/admin/users/administrator",
                   {"display_name": "Ada Admin", "roles": ["administrator", "auditor"]})
    assert r.status_code == 202, r.text
    pending = r.json()["pending_request"]
    assert (pending["status"], pending["adds"]) == ("pending", ["auditor"])
    assert r.json()["roles"] == ["administrator"] and r.json()["display_name"] == "Ada Admin"  # the name is saved
    assert admin.get(f"/api/cases/{p['edith']}").status_code == 403
    # one request at a time, and never approved or refused by its requester
    r = admin.send("PATCH", "/api/admin/users/administrator", {"roles": ["administrator", "team_manager"]})
    assert r.status_code == 409 and "still waiting for another administrator" in r.json()["message"], r.text
    assert admin.post(f"/api/admin/role-requests/{pending['id']}/approve").status_code == 403
    assert admin.post(f"/api/admin/role-requests/{pending['id']}/refuse").status_code == 403
    assert admin.get(f"/api/cases/{p['edith']}").status_code == 403
    # a second administrator the requester had no hand in (made by the operator: api.auth.create_user); one the
    # requester adds themselves cannot decide it (test_the_lone_administrator_route_around_dual_control_is_closed)
    from api.auth import create_user

    create_user(eng, "admin2", "a long password", display_name="Second Admin", roles=["administrator"])
    second = Api(app, "admin2", "a long password")
    assert [q["id"] for q in second.get("/api/admin/role-requests").json()["requests"]] == [pending["id"]]
    r = second.post(f"/api/admin/role-requests/{pending['id']}/approve", {"reason": "Audit of 2026 cases"})
    assert r.status_code == 200 and (r.json()["status"], r.json()["decided_by"]) == ("approved", "admin2"), r.text
    assert second.post(f"/api/admin/role-requests/{pending['id']}/refuse").status_code == 409  # already decided
    assert _me(admin)["roles"] == ["administrator", "auditor"]
    assert admin.get(f"/api/cases/{p['edith']}").status_code == 200
    from tests.test_api_admin import _audit

    trail = [(e["type"], e["actor"], e["data"].get("request")) for e in _audit(eng)]
    assert ("user.role_change_requested", "administrator", pending["id"]) in trail
    assert ("user.role_change_approved", "admin2", pending["id"]) in trail
    assert ("user.changed", "admin2", pending["id"]) in trail


def test_a_refused_request_changes_nothing_and_other_changes_are_not_held(world):
    eng, app, _p = world
    from api.auth import create_user
    from tests.front_door_world import Api

    admin = as_role(app, "administrator")
    create_user(eng, "admin2", "a long password", display_name="Second Admin", roles=["administrator"])
    second = Api(app, "admin2", "a long password")
    r = second.send("PATCH", "/api/admin/users/admin2", {"roles": ["administrator", "social_worker"],
                                                          "teams": ["safeguarding"]})
    assert r.status_code == 202 and r.json()["pending_request"]["adds"] == ["social_worker", "team:safeguarding"]
    rid = r.json()["pending_request"]["id"]
    r = admin.post(f"/api/admin/role-requests/{rid}/refuse", {"reason": "No casework for administrators"})
    assert r.status_code == 200 and r.json()["status"] == "refused", r.text
    assert (_me(second)["roles"], _me(second)["teams"]) == (["administrator"], [])
    from tests.test_api_admin import _audit

    assert [(e["actor"], e["data"]["reason"]) for e in _audit(eng) if e["type"] == "user.role_change_refused"] \
        == [("administrator", "No casework for administrators")]
    # a role that opens no case, on one's own account or anyone's, applies at once
    r = admin.send("PATCH", "/api/admin/users/administrator", {"roles": ["administrator", "process_owner"]})
    assert r.status_code == 200 and r.json()["pending_request"] is None and "process_owner" in r.json()["roles"]
    r = admin.send("PATCH", "/api/admin/users/auditor", {"roles": ["auditor", "process_owner"]})
    assert r.status_code == 200 and r.json()["roles"] == ["auditor", "process_owner"], r.text
    # only administrators see and decide requests
    worker = as_role(app, "auditor")
    assert worker.get("/api/admin/role-requests").status_code == 403
    assert worker.post(f"/api/admin/role-requests/{rid}/approve").status_code == 403
    assert admin.post("/api/admin/role-requests/999999/approve").status_code == 404


# ---------------------------------------------------------------------- 3. no second administrator of one's own
def _sign_in_status(app, username, password):
    return TestClient(app).post("/api/session", json={"username": username, "password": password}).status_code


def test_the_lone_administrator_route_around_dual_control_is_closed(world):
    """The re-test of 4 December 2026: an administrator created a second administrator account (applied at once),
    signed in with the password they chose and approved their own request for the auditor role with it; or simply
    created an auditor account for themselves. Now such an account is unusable until a second, different
    administrator approves it, and even then it cannot decide its creator's requests, nor they its."""
    eng, app, p = world
    from api.auth import create_user
    from carepath.cli import main
    from tests.front_door_world import Api
    from tests.test_api_admin import _audit

    admin = as_role(app, "administrator")
    r = admin.send("PATCH", "/api/admin/users/administrator", {"roles": ["administrator", "auditor"]})
    assert r.status_code == 202
    mine = r.json()["pending_request"]["id"]
    # a second administrator account of their own: made, but deactivated and holding no role
    r = admin.post("/api/admin/users", {"username": "sidekick", "display_name": "Side Kick",
                                        "password": "a long password", "roles": ["administrator"], "teams": []})
    assert r.status_code == 202, r.text
    assert (r.json()["active"], r.json()["roles"]) == (False, [])
    assert r.json()["pending_request"]["adds"] == ["administrator"]
    account = r.json()["pending_request"]["id"]
    assert _sign_in_status(app, "sidekick", "a long password") == 401  # so it approves nothing
    # its creator cannot approve it, nor make it usable another way (the API, the command line)
    assert admin.post(f"/api/admin/role-requests/{account}/approve").status_code == 403
    assert admin.send("PATCH", "/api/admin/users/sidekick", {"active": True}).status_code == 409
    assert admin.send("PATCH", "/api/admin/users/sidekick", {"roles": ["process_owner"]}).status_code == 409
    r = admin.send("PUT", "/api/admin/users/sidekick/password", {"password": "another long password"})
    assert r.status_code == 409, r.text
    assert main(["user", "reactivate", "sidekick", "--as", "administrator", "--db", eng.db.url]) != 0
    assert _sign_in_status(app, "sidekick", "a long password") == 401
    # an auditor account for themselves: the same
    r = admin.post("/api/admin/users", {"username": "my.auditor", "display_name": "Ada Again",
                                        "password": "a long password", "roles": ["auditor"], "teams": []})
    assert r.status_code == 202 and r.json()["pending_request"]["adds"] == ["auditor"], r.text
    assert _sign_in_status(app, "my.auditor", "a long password") == 401
    assert admin.get(f"/api/cases/{p['edith']}").status_code == 403
    # a second administrator (made by the operator) approves the sidekick account, believing it a colleague's:
    # it signs in, but cannot decide the requests of the administrator who chose its password, nor they its
    create_user(eng, "admin2", "a long password", display_name="Second Admin", roles=["administrator"])
    second = Api(app, "admin2", "a long password")
    assert second.post(f"/api/admin/role-requests/{account}/approve").status_code == 200
    sidekick = Api(app, "sidekick", "a long password")
    # it must first choose its own password (api/own_password.py) — which whoever chose the first one can do, so
    # the change does not undo the link
    r = sidekick.post(f"/api/admin/role-requests/{mine}/approve")
    assert r.status_code == 403 and r.json()["error"] == "password_change_required"
    r = sidekick.send("PUT", "/api/session/password", {"current_password": "a long password",
                                                       "new_password": "sidekick's own lantern orbit"})
    assert r.status_code == 200, r.text
    sidekick.csrf = r.json()["csrf_token"]
    r = sidekick.post(f"/api/admin/role-requests/{mine}/approve")
    assert r.status_code == 403 and "administrator chose your account's password" in r.json()["message"], r.text
    assert sidekick.post(f"/api/admin/role-requests/{mine}/refuse").status_code == 403
    theirs = sidekick.send("PATCH", "/api/admin/users/sidekick", {"roles": ["administrator", "auditor"]})
    assert theirs.status_code == 202
    r = admin.post(f"/api/admin/role-requests/{theirs.json()['pending_request']['id']}/approve")
    assert r.status_code == 403 and "you chose sidekick's password" in r.json()["message"], r.text
    assert _me(admin)["roles"] == ["administrator"] and _me(sidekick)["roles"] == ["administrator"]
    assert admin.get(f"/api/cases/{p['edith']}").status_code == 403
    # the users page says why and offers no decision on them
    page = sidekick.get("/admin/users").text
    assert f'action="/admin/role-requests/{mine}"' not in page and "chose your account&#39;s password" in page
    assert f'action="/admin/role-requests/{account + 1}"' not in page  # my.auditor's: asked by administrator too
    assert f'action="/admin/role-requests/{account + 1}"' in second.get("/admin/users").text
    # everything is in the system history
    trail = [(e["type"], e["actor"]) for e in _audit(eng) if e["data"].get("username") == "sidekick"]
    assert trail == [("user.created", "administrator"), ("user.account_requested", "administrator"),
                     ("user.account_approved", "admin2"), ("user.changed", "admin2"),
                     ("user.password_changed", "sidekick"), ("user.role_change_requested", "sidekick")]


def test_setting_another_administrators_password_waits_for_a_second_administrator(world):
    """The re-test: an administrator set another administrator's password and signed in as them."""
    eng, app, _p = world
    from api.auth import create_user
    from tests.front_door_world import Api

    for name in ("admin2", "admin3"):
        create_user(eng, name, "a long password", display_name=name.title(), roles=["administrator"])
    admin = as_role(app, "administrator")
    two = Api(app, "admin2", "a long password")
    r = admin.send("PUT", "/api/admin/users/admin2/password", {"password": "chosen by the first one"})
    assert r.status_code == 202 and r.json()["pending_request"]["kind"] == "password", r.text
    rid = r.json()["pending_request"]["id"]
    assert _sign_in_status(app, "admin2", "chosen by the first one") == 401  # not set
    assert two.get("/api/me").status_code == 200  # nothing changed
    assert admin.post(f"/api/admin/role-requests/{rid}/approve").status_code == 403  # who asked
    assert two.post(f"/api/admin/role-requests/{rid}/approve").status_code == 403  # whose password it is
    r = admin.send("PUT", "/api/admin/users/admin2/password", {"password": "chosen again by the first"})
    assert r.status_code == 409 and "still waiting for another administrator" in r.json()["message"]
    # giving someone else the administrator role waits too
    r = admin.send("PATCH", "/api/admin/users/process-owner", {"roles": ["administrator", "process_owner"]})
    assert r.status_code == 202 and r.json()["pending_request"]["adds"] == ["administrator"], r.text
    assert _me(as_role(app, "process_owner"))["roles"] == ["process_owner"]
    # a third administrator approves the password: set, their sessions ended
    three = Api(app, "admin3", "a long password")
    r = three.post(f"/api/admin/role-requests/{rid}/approve", {"reason": "Forgot it; checked by phone"})
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    assert two.get("/api/me").status_code == 401
    assert _sign_in_status(app, "admin2", "a long password") == 401
    assert _sign_in_status(app, "admin2", "chosen by the first one") == 200
    from tests.test_api_admin import _audit

    [done] = [e for e in _audit(eng) if e["type"] == "user.password_set"]
    assert (done["actor"], done["data"]["set_by"], done["data"]["request"]) == ("admin3", "administrator", rid)
    # the first administrator now knows admin2's password: admin2 must choose their own before anything else
    # (api/own_password.py), and even then they do not decide each other's requests
    again = Api(app, "admin2", "chosen by the first one")
    r = again.post(f"/api/admin/role-requests/{rid + 1}/approve")  # the administrator role for process-owner
    assert r.status_code == 403 and r.json()["error"] == "password_change_required"
    r = again.send("PUT", "/api/session/password", {"current_password": "chosen by the first one",
                                                    "new_password": "admin2 chose this lantern"})
    assert r.status_code == 200, r.text
    again.csrf = r.json()["csrf_token"]
    r = again.post(f"/api/admin/role-requests/{rid + 1}/approve")
    assert r.status_code == 403 and "administrator chose your account's password" in r.json()["message"]
    assert three.post(f"/api/admin/role-requests/{rid + 1}/approve").status_code == 200
    assert _me(as_role(app, "process_owner"))["roles"] == ["administrator", "process_owner"]


@pytest.fixture
def server(tmp_path):
    """The keyboard journey on SQLite only: what it adds to the tests above (the pages, keyboard use, axe) does not
    depend on the database, and a browser journey is the costliest test here. The same approval through the page
    on PostgreSQL: test_self_approval_through_the_page_is_refused (both databases)."""
    from tests.browser import live_server

    eng, app, people = build(f"sqlite:///{tmp_path / 'carepath.db'}")
    with live_server(app) as base:
        yield base, eng, people
    eng.db.dispose()


def test_a_second_administrator_approves_on_the_users_page_by_keyboard(server):
    base, eng, _p = server
    from api.auth import create_user
    from tests.browser import launch, run_axe, sign_in
    from tests.front_door_world import PASSWORD

    create_user(eng, "admin2", "a long password", display_name="Second Admin", roles=["administrator"])
    with launch() as browser:
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        sign_in(page, base, "administrator", PASSWORD, then="/home")
        page.goto(f"{base}/admin/users/administrator")
        page.get_by_label("Auditor").check()
        page.get_by_role("button", name="Save name, roles and teams").click()
        page.wait_for_url(f"{base}/admin/users/administrator")
        banner = page.locator(".govuk-notification-banner").inner_text()
        assert "it waits for another administrator to approve it" in banner and "(auditor)" in banner
        assert not page.get_by_label("Auditor").is_checked()  # not given yet
        run_axe(page, "own user page, role change waiting")
        page.goto(f"{base}/admin/users")
        card = page.locator(".govuk-summary-card", has_text="administrator asks for auditor")
        assert "Waiting for another administrator" in card.inner_text()
        assert card.get_by_role("button").count() == 0  # no self-approval
        run_axe(page, "users with a request of one's own")
        context.close()

        # a second request gone stale meanwhile (a team added to an account without a casework role, which a
        # casework role asked for would open): said on its card, with no Approve button
        from api import admin as admin_rules
        from tests.test_api_admin import tm_user

        admin_rules.change(eng, tm_user(eng, "administrator"), "process-owner",
                           roles=["process_owner", "social_worker"])
        admin_rules.change(eng, tm_user(eng, "admin2"), "process-owner", teams=["safeguarding"])
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        sign_in(page, base, "admin2", "a long password", then="/home")
        page.goto(f"{base}/admin/users")
        mine = page.locator(".govuk-summary-card", has_text="administrator asks for auditor").inner_text()
        assert "Roles it adds\tauditor" in mine and "After approval\tRoles: administrator, auditor" in mine, mine
        stale = page.locator(".govuk-summary-card", has_text="asks to give process-owner social worker")
        assert "can no longer be approved" in stale.inner_text() and "safeguarding" in stale.inner_text()
        assert stale.get_by_role("button", name="Approve").count() == 0
        run_axe(page, "users with a request to decide and one gone stale")
        page.focus("input[id^='reason-']")
        page.keyboard.type("Annual audit of case files")
        page.keyboard.press("Tab")  # to Approve
        assert page.evaluate("document.activeElement.textContent.trim()") == "Approve"
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/admin/users")
        assert "Role change for administrator approved" in page.locator(".govuk-notification-banner").inner_text()
        assert page.locator(".govuk-summary-card").count() == 1  # the stale one, to refuse
        assert "administrator, auditor" in page.locator("tr", has_text="Test administrator").inner_text()
        run_axe(page, "users after approving")
        context.close()
    from tests.test_api_admin import _audit

    [approved] = [e for e in _audit(eng) if e["type"] == "user.role_change_approved"]
    assert (approved["actor"], approved["data"]["reason"]) == ("admin2", "Annual audit of case files")


def test_self_approval_through_the_page_is_refused(world):
    eng, app, _p = world
    from tests.test_pages_intake import signin

    admin, csrf = signin(app, "administrator")
    r = admin.post("/admin/users/administrator", data={"csrf_token": csrf, "action": "details",
                                                        "display_name": "Admin", "roles": ["administrator", "auditor"]})
    assert r.status_code == 303
    assert "Waiting for another administrator" in admin.get("/admin/users").text
    from engine.schema import role_requests

    with eng.db.engine.connect() as conn:
        rid = conn.execute(select(role_requests.c.id)).scalar_one()
    r = admin.post(f"/admin/role-requests/{rid}", data={"csrf_token": csrf, "action": "approve"})
    assert r.status_code == 403 and "another administrator must" in r.text
    from tests.test_api_admin import tm_user

    assert tm_user(eng, "administrator").roles == frozenset({"administrator"})
    # a second administrator approves it on the same page (the keyboard journey below runs on SQLite only)
    from api.auth import create_user
    from tests.front_door_world import PASSWORD

    create_user(eng, "admin2", PASSWORD, display_name="Second Admin", roles=["administrator"])
    second = TestClient(app, follow_redirects=False)
    token = re.search(r'name="form_token" value="([^"]+)"', second.get("/sign-in").text).group(1)
    r = second.post("/sign-in", data={"form_token": token, "username": "admin2", "password": PASSWORD})
    assert r.status_code == 303, r.text
    csrf2 = re.search(r'name="csrf_token" value="([^"]+)"', second.get("/admin/users").text).group(1)
    r = second.post(f"/admin/role-requests/{rid}", data={"csrf_token": csrf2, "action": "approve",
                                                         "reason": "Annual audit of case files"})
    assert r.status_code == 303, r.text
    assert tm_user(eng, "administrator").roles == frozenset({"administrator", "auditor"})


# ---------------------------------------------------------------------- 4. approval adds what was asked, as it is now
def _two_admins(eng, app):
    """The test world's administrator and a second one the operator made (neither chose the other's password)."""
    from api.auth import create_user
    from tests.front_door_world import PASSWORD, Api

    create_user(eng, "admin2", PASSWORD, display_name="Second Admin", roles=["administrator"])
    return as_role(app, "administrator"), Api(app, "admin2")


def _request(session, rid):
    [q] = [q for q in session.get("/api/admin/role-requests").json()["requests"] if q["id"] == rid]
    return q


def test_approving_a_request_that_waited_keeps_the_team_changes_made_meanwhile(world):
    """Findings 15 item 1: approving a role request restored the teams as they were when it was asked — a team
    taken away meanwhile was given back (and one added meanwhile was dropped), the approver shown only the role."""
    eng, app, _p = world
    from tests.test_api_admin import _audit

    a, b = _two_admins(eng, app)
    r = a.post("/api/admin/users", {"username": "sam3", "display_name": "Sam Worker", "password": "violet harbour "
                                    "quietly 77", "roles": ["social_worker"], "teams": ["safeguarding"]})
    assert r.status_code == 202, r.text
    assert b.post(f"/api/admin/role-requests/{r.json()['pending_request']['id']}/approve").status_code == 200
    r = a.send("PATCH", "/api/admin/users/sam3", {"roles": ["social_worker", "occupational_therapist"]})
    assert r.status_code == 202 and r.json()["pending_request"]["adds"] == ["occupational_therapist"], r.text
    rid = r.json()["pending_request"]["id"]
    q = _request(b, rid)
    assert (q["roles_added"], q["teams_added"]) == (["occupational_therapist"], [])
    assert q["after"] == {"roles": ["occupational_therapist", "social_worker"], "teams": ["safeguarding"]}
    # taking the team away applies at once, and the request now says what approving it would leave
    r = b.send("PATCH", "/api/admin/users/sam3", {"teams": []})
    assert r.status_code == 200 and r.json()["teams"] == [], r.text
    q = _request(b, rid)
    assert q["after"] == {"roles": ["occupational_therapist", "social_worker"], "teams": []} and q["stale"] is None
    r = b.post(f"/api/admin/role-requests/{rid}/approve")
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    sam = a.get("/api/admin/users/sam3").json()
    assert (sam["roles"], sam["teams"]) == (["occupational_therapist", "social_worker"], []), sam
    [applied] = [e for e in _audit(eng) if e["type"] == "user.changed" and e["data"].get("request") == rid]
    assert applied["data"]["changes"] == {"roles": {"from": ["social_worker"],
                                                    "to": ["occupational_therapist", "social_worker"]}}
    # the reverse: a team added meanwhile (it opens nothing: no casework role) is kept, not dropped
    r = a.send("PATCH", "/api/admin/users/process-owner", {"roles": ["process_owner", "performance"]})
    assert r.status_code == 202 and r.json()["pending_request"]["adds"] == ["performance"], r.text
    rid = r.json()["pending_request"]["id"]
    r = b.send("PATCH", "/api/admin/users/process-owner", {"teams": ["safeguarding"]})
    assert r.status_code == 200 and r.json()["teams"] == ["safeguarding"], r.text
    assert b.post(f"/api/admin/role-requests/{rid}/approve").status_code == 200
    po = a.get("/api/admin/users/process-owner").json()
    assert (po["roles"], po["teams"]) == (["performance", "process_owner"], ["safeguarding"]), po


def test_a_request_that_would_open_more_than_it_showed_is_refused_as_stale(world):
    """A team added meanwhile to an account with no casework role applies at once (it opens nothing); approving a
    casework role asked for before would open that team's cases too, which the approver was never shown: 409, and
    the request says why; refusing it still works."""
    eng, app, _p = world
    a, b = _two_admins(eng, app)
    r = a.send("PATCH", "/api/admin/users/process-owner", {"roles": ["process_owner", "social_worker"]})
    assert r.status_code == 202 and r.json()["pending_request"]["adds"] == ["social_worker"], r.text
    rid = r.json()["pending_request"]["id"]
    assert b.send("PATCH", "/api/admin/users/process-owner", {"teams": ["safeguarding"]}).status_code == 200
    q = _request(b, rid)
    assert "safeguarding" in q["stale"] and "ask again" in q["stale"], q
    r = b.post(f"/api/admin/role-requests/{rid}/approve")
    assert r.status_code == 409 and "changed since this was asked" in r.json()["message"], r.text
    assert "safeguarding" in r.json()["message"]
    po = a.get("/api/admin/users/process-owner").json()
    assert (po["roles"], po["teams"], po["pending_request"]["id"]) == (["process_owner"], ["safeguarding"], rid)
    assert b.post(f"/api/admin/role-requests/{rid}/refuse", {"reason": "Ask again"}).status_code == 200
    # deactivated meanwhile: refused too
    r = a.send("PATCH", "/api/admin/users/social-worker", {"roles": ["social_worker", "auditor"]})
    assert r.status_code == 202, r.text
    rid = r.json()["pending_request"]["id"]
    assert b.send("PATCH", "/api/admin/users/social-worker", {"active": False}).status_code == 200
    assert "deactivated" in _request(b, rid)["stale"]
    r = b.post(f"/api/admin/role-requests/{rid}/approve")
    assert r.status_code == 409 and "deactivated" in r.json()["message"], r.text


def test_taking_access_away_applies_at_once_even_beside_an_addition_that_waits(world):
    """One change that takes a team away and adds a role: the team goes now, the role waits; the request holds only
    what it adds, and approving it gives back nothing taken away."""
    eng, app, _p = world
    a, b = _two_admins(eng, app)
    r = a.send("PATCH", "/api/admin/users/social-worker", {"roles": ["social_worker", "occupational_therapist"],
                                                             "teams": ["reablement"]})
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["roles"], body["teams"]) == (["social_worker"], []), body  # social_work taken away now
    assert body["pending_request"]["adds"] == ["occupational_therapist", "team:reablement"]
    q = _request(b, body["pending_request"]["id"])
    assert (q["roles_added"], q["teams_added"]) == (["occupational_therapist"], ["reablement"])
    assert q["after"] == {"roles": ["occupational_therapist", "social_worker"], "teams": ["reablement"]}
    assert b.post(f"/api/admin/role-requests/{q['id']}/approve").status_code == 200
    sw = a.get("/api/admin/users/social-worker").json()
    assert (sw["roles"], sw["teams"]) == (["occupational_therapist", "social_worker"], ["reablement"]), sw


def test_a_change_answers_the_request_still_waiting(world):
    """Findings 15 item 8: a PATCH made while a request waited answered `pending_request: null`; GET showed it."""
    eng, app, _p = world
    a, _b = _two_admins(eng, app)
    r = a.send("PATCH", "/api/admin/users/auditor", {"roles": ["auditor", "performance"]})
    assert r.status_code == 202 and r.json()["waits"] is True, r.text
    waiting = r.json()["pending_request"]
    r = a.send("PATCH", "/api/admin/users/auditor", {"display_name": "Audrey Auditor"})
    assert r.status_code == 200 and r.json()["display_name"] == "Audrey Auditor", r.text
    assert r.json()["waits"] is False
    assert r.json()["pending_request"] == waiting == a.get("/api/admin/users/auditor").json()["pending_request"]
    assert waiting["id"] and waiting["status"] == "pending" and waiting["requested_by"] == "administrator"
    # a new password for an account that holds no privileged role yet (applied at once): the same
    r = a.send("PATCH", "/api/admin/users/process-owner", {"roles": ["process_owner", "auditor"]})
    rid = r.json()["pending_request"]["id"]
    r = a.send("PUT", "/api/admin/users/process-owner/password", {"password": "a brand new long password"})
    assert r.status_code == 200 and r.json()["waits"] is False and r.json()["pending_request"]["id"] == rid, r.text


def _page_sign_in(app, username):
    from tests.front_door_world import PASSWORD

    client = TestClient(app, follow_redirects=False)
    token = re.search(r'name="form_token" value="([^"]+)"', client.get("/sign-in").text).group(1)
    r = client.post("/sign-in", data={"form_token": token, "username": username, "password": PASSWORD})
    assert r.status_code == 303, r.text
    return client, re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/users").text).group(1)


def test_the_users_page_approves_the_same_way_and_shows_what_changes(world):
    eng, app, _p = world
    from tests.test_api_admin import tm_user

    a, b = _two_admins(eng, app)
    r = a.send("PATCH", "/api/admin/users/social-worker", {"roles": ["social_worker", "occupational_therapist"]})
    rid = r.json()["pending_request"]["id"]
    assert b.send("PATCH", "/api/admin/users/social-worker", {"teams": []}).status_code == 200
    page, csrf = _page_sign_in(app, "admin2")
    html = page.get("/admin/users").text
    card = html[html.index(f'id="request-{rid}"'):]
    card = card[:card.index("</form>")]
    rows = dict(re.findall(r'<dt class="govuk-summary-list__key">([^<]+)</dt><dd class="govuk-summary-list__value">'
                           r'(.*?)</dd>', card))
    assert rows["Roles it adds"] == "occupational therapist" and rows["Teams it adds"] == "None", rows
    assert rows["Roles and teams now"] == "Roles: social worker<br>Teams: none"
    assert rows["After approval"] == "Roles: occupational therapist, social worker<br>Teams: none"
    r = page.post(f"/admin/role-requests/{rid}", data={"csrf_token": csrf, "action": "approve"})
    assert r.status_code == 303, r.text
    assert (tm_user(eng, "social-worker").roles, tm_user(eng, "social-worker").teams) == (
        frozenset({"social_worker", "occupational_therapist"}), frozenset())
    # stale on the page: said on the card, no Approve button, and approving anyway is refused with the reason
    r = a.send("PATCH", "/api/admin/users/process-owner", {"roles": ["process_owner", "social_worker"]})
    rid = r.json()["pending_request"]["id"]
    assert b.send("PATCH", "/api/admin/users/process-owner", {"teams": ["safeguarding"]}).status_code == 200
    html = page.get("/admin/users").text
    card = html[html.index(f'id="request-{rid}"'):]
    card = card[:card.index("</form>")]
    assert "changed since this was asked" in card and 'value="approve"' not in card, card
    r = page.post(f"/admin/role-requests/{rid}", data={"csrf_token": csrf, "action": "approve"})
    assert r.status_code == 409 and "changed since this was asked" in r.text
    assert tm_user(eng, "process-owner").roles == frozenset({"process_owner"})
