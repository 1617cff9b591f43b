"""Signing in through the council's identity provider (api/oidc.py, docs/security.md "Signing in through the
council's identity provider"): the whole authorization-code flow against the fake provider the suite starts
(tests/fake_oidc.py), through the HTTP client — and each way it must refuse, as a GOV.UK error page, never a 500.
On SQLite and PostgreSQL (the `db_url` fixture)."""

from __future__ import annotations

import html
import json
import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from fastapi.testclient import TestClient
from joserfc.jwk import RSAKey
from sqlalchemy import select, update

from api import admin
from api.app import create_app
from api.auth import COOKIE, AuthSettings, create_user, users
from api.oidc import Grant, OidcSettings, load_groups, oidc_settings
from engine import history
from engine.errors import CarepathError
from engine.forms import FormLibrary
from engine.runtime import Engine
from engine.schema import events, user_identities
from tests.conftest import DIAGRAMS, START
from tests.fake_oidc import CLIENT_ID, CLIENT_SECRET, running
from tests.test_api_admin import tm_user

GROUPS = {
    "grp-social-work": Grant(frozenset({"social_worker"}), frozenset({"social_work"})),
    "grp-safeguarding": Grant(frozenset(), frozenset({"safeguarding"})),
    "grp-managers": Grant(frozenset({"team_manager"}), frozenset()),
}
CALLBACK = "http://testserver/sign-in/oidc/callback"


@pytest.fixture(scope="module")
def fake():
    with running() as provider:
        provider.redirect_uris.add(CALLBACK)
        yield provider


def settings_for(fake, **kw) -> OidcSettings:
    return OidcSettings(issuer=fake.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, groups=GROUPS,
                        name="Northshire Council account", **kw)


def _world(url: str, calls, fake):
    eng = Engine(url, registry=calls.registry(), forms=FormLibrary())
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "three_tasks.bpmn"])
    create_user(eng, "ada", "a long password", display_name="Ada Admin", roles=["administrator"])
    create_user(eng, "jo.bloggs", "a long password", display_name="A local Jo", roles=["auditor"])
    app = create_app(eng, run_timers=False, identity_provider=settings_for(fake))
    fake.now = lambda: eng.now()  # the provider's clock starts with the engine's; the tests move the engine's
    fake.reset()
    fake.user = {"sub": "sub-0001", "name": "Jo Bloggs", "preferred_username": "jo.bloggs@northshire.test",
                 "groups": ["grp-social-work", "grp-safeguarding", "grp-unrelated"]}
    return eng, app


@pytest.fixture
def env(db_url, calls, fake):
    """Accounts made and changed: on SQLite and PostgreSQL."""
    eng, app = _world(db_url, calls, fake)
    yield eng, app
    eng.db.dispose()


@pytest.fixture
def protocol(tmp_path, calls, fake):
    """The protocol's refusals, which store nothing but the pending sign-in (the same on both databases): SQLite."""
    eng, app = _world(f"sqlite:///{tmp_path / 'carepath.db'}", calls, fake)
    yield eng, app
    eng.db.dispose()


def start(client: TestClient) -> str:
    """Sign-in begins: carepath sends the browser to the provider; returns the provider's answer (the URL of the
    callback with the code and state), as the provider's redirect gives it."""
    r = client.get("/sign-in/oidc", follow_redirects=False)
    assert r.status_code == 303, r.text
    authorize = r.headers["location"]
    q = parse_qs(urlparse(authorize).query)
    assert q["code_challenge_method"] == ["S256"] and len(q["code_challenge"][0]) == 43
    assert q["state"][0] and q["nonce"][0] and q["redirect_uri"] == [CALLBACK]
    at_provider = requests.get(authorize, allow_redirects=False, timeout=10)
    assert at_provider.status_code == 302, at_provider.text
    return at_provider.headers["location"]


def back(client: TestClient, url: str):
    parts = urlparse(url)
    return client.get(f"{parts.path}?{parts.query}", follow_redirects=False)


def sign_in(app) -> tuple[TestClient, object]:
    client = TestClient(app, raise_server_exceptions=False)
    r = back(client, start(client))
    return client, r


def system_events(eng, type_: str) -> list[history.Event]:
    with eng.db.engine.connect() as conn:
        rows = conn.execute(select(events).where(events.c.chain == history.SYSTEM_CHAIN, events.c.type == type_)
                            .order_by(events.c.seq)).all()
    return [r for r in rows]


def page(r) -> str:
    """The page's text as a person reads it (entities such as &#39; undone)."""
    return html.unescape(r.text)


def roles(row) -> list[str]:
    return json.loads(row.roles) if isinstance(row.roles, str) else row.roles


def account(eng, username: str):
    with eng.db.engine.connect() as conn:
        return conn.execute(select(users).where(users.c.username == username)).first()


# ---------------------------------------------------------------------- the flow
def test_a_person_signs_in_at_the_provider_and_their_session_works_on_the_api(env, fake):
    eng, app = env
    client, r = sign_in(app)
    assert r.status_code == 200 and "You are signed in" in page(r)
    assert 'http-equiv="refresh" content="0;url=/tasks"' in page(r)  # a social worker lands in their inbox
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    me = client.get("/api/me").json()
    # matched by issuer + sub; the local account "jo.bloggs" is somebody else: the new account gets -2
    assert me["user"] == {"username": "jo.bloggs-2", "display_name": "Jo Bloggs", "roles": ["social_worker"],
                          "teams": ["safeguarding", "social_work"]}
    assert client.get("/api/tasks").status_code == 200
    assert client.get("/tasks", follow_redirects=False).status_code == 200
    # a state-changing request needs the session's CSRF token as for any session
    assert client.delete("/api/session").status_code == 403
    assert client.delete("/api/session", headers={"X-CSRF-Token": me["csrf_token"]}).status_code == 200
    [created] = system_events(eng, "user.created")
    data = json.loads(created.data) if isinstance(created.data, str) else created.data
    assert created.actor == "oidc" and data["username"] == "jo.bloggs-2" and data["roles"] == ["social_worker"]
    assert data["identity_provider"] == fake.issuer
    # the account has no password: the local sign-in never opens it
    assert TestClient(app).post("/api/session", json={"username": "jo.bloggs-2", "password": "!oidc"}).status_code \
        == 401
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(user_identities.c.subject)).scalars().all() == ["sub-0001"]


def test_no_code_state_or_token_reaches_the_logs(protocol, fake, caplog):
    _eng, app = protocol
    client = TestClient(app, raise_server_exceptions=False)
    url = start(client)
    q = parse_qs(urlparse(url).query)
    caplog.set_level(logging.DEBUG)  # every logger, the libraries' (Authlib, urllib3) included
    r = back(client, url)
    assert r.status_code == 200
    # what the server side wrote (the test's own HTTP client, playing the browser, logs the URL it asked for)
    server_side = [rec for rec in caplog.records if not rec.name.startswith("httpx")]
    logged = "\n".join(f"{rec.getMessage()} {rec.args!r}" for rec in server_side)
    assert "/sign-in/oidc/callback" in logged  # the request log saw the callback...
    secrets_seen = [q["code"][0], q["state"][0], fake.issued["id_token"], fake.issued["access_token"],
                    fake.issued["id_token"].split(".")[1], CLIENT_SECRET]
    assert [s for s in secrets_seen if s in logged] == []  # ...but none of what it carried or fetched


def test_the_same_person_is_found_by_sub_not_by_name_or_email(env, fake):
    eng, app = env
    sign_in(app)
    fake.user = {**fake.user, "preferred_username": "jo.smith@northshire.test", "name": "Jo Smith"}
    client, r = sign_in(app)  # a new name at the provider: the same account, renamed
    assert client.get("/api/me").json()["user"]["username"] == "jo.bloggs-2"
    assert client.get("/api/me").json()["user"]["display_name"] == "Jo Smith"
    fake.user = {**fake.user, "sub": "sub-0002", "preferred_username": "jo.bloggs@northshire.test"}
    client, r = sign_in(app)  # another person with the first one's e-mail address: another account
    assert client.get("/api/me").json()["user"]["username"] == "jo.bloggs-3"
    assert [e.actor for e in system_events(eng, "user.created")] == ["oidc", "oidc"]


def test_a_name_with_control_or_invisible_characters_is_made_printable(env, fake):
    """The name comes from the provider, where people often edit their own: a NUL in it was a server error on
    PostgreSQL (text cannot hold NUL) and, on SQLite, was stored with the escape sequences and right-to-left
    override beside it, into the account, the history's user.created event and every page naming the person."""
    eng, app = env
    fake.user = {**fake.user, "name": "Jo\x00Bloggs\x1b[31m \u202eRed\u200b"}
    client, r = sign_in(app)
    assert r.status_code == 200 and "You are signed in" in page(r)
    assert client.get("/api/me").json()["user"]["display_name"] == "Jo Bloggs [31m Red"
    [created] = system_events(eng, "user.created")
    data = json.loads(created.data) if isinstance(created.data, str) else created.data
    assert data["display_name"] == "Jo Bloggs [31m Red"
    fake.user = {**fake.user, "name": "\u200b\x00 ", "preferred_username": "jo.b@northshire.test"}
    client, r = sign_in(app)  # nothing printable in the name: the user name at the provider instead
    assert r.status_code == 200 and client.get("/api/me").json()["user"]["display_name"] == "jo.b@northshire.test"


def test_a_provider_user_name_that_is_one_of_the_historys_own_gets_another(env, fake):
    """"system" is what the history shows for what no person did: an account of that name would have its
    actions shown as the system's. A person whose user name at the provider is system@... gets system-2."""
    _eng, app = env
    fake.user = {**fake.user, "preferred_username": "System@northshire.test", "name": "Sys Tem"}
    client, r = sign_in(app)
    assert r.status_code == 200 and client.get("/api/me").json()["user"]["username"] == "system-2"


@pytest.mark.parametrize("subject", ["sub-\x00-0001", "sub-\x1b-0001", "x" * 256])
def test_a_subject_that_cannot_be_kept_is_refused_as_a_page(env, fake, subject):
    """`sub` is the person's key at the provider: one holding NUL was a server error on PostgreSQL (text cannot
    hold NUL); one with other control characters was stored. Refused as a page, nothing stored."""
    eng, app = env
    fake.user = {**fake.user, "sub": subject}
    client, r = sign_in(app)
    assert r.status_code == 401 and "Sign-in could not be checked" in page(r), r.text
    assert client.get("/api/me").status_code == 401
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(user_identities.c.subject)).scalars().all() == []
    assert system_events(eng, "user.created") == []


def test_roles_follow_the_groups_and_are_removed_when_no_group_maps(env, fake):
    eng, app = env
    first, _ = sign_in(app)
    fake.user = {**fake.user, "groups": ["grp-managers", "grp-social-work"]}
    client, r = sign_in(app)
    assert r.status_code == 200
    assert client.get("/api/me").json()["user"]["roles"] == ["social_worker", "team_manager"]
    [changed] = system_events(eng, "user.changed")
    data = json.loads(changed.data) if isinstance(changed.data, str) else changed.data
    assert changed.actor == "oidc"
    assert data["changes"] == {"roles": {"from": ["social_worker"], "to": ["social_worker", "team_manager"]},
                               "teams": {"from": ["safeguarding", "social_work"], "to": ["social_work"]}}
    # roles come only from the groups: an administrator can neither change them nor give a password in carepath
    with pytest.raises(admin.Invalid) as refused:
        admin.change(eng, tm_user(eng, "ada"), "jo.bloggs-2", roles=["auditor"])
    assert "their roles and teams come from their groups there" in refused.value.by_field["roles"]
    with pytest.raises(admin.Invalid) as refused:
        admin.set_password(eng, tm_user(eng, "ada"), "jo.bloggs-2", "a long enough password")
    assert "has no carepath password" in refused.value.by_field["password"]
    assert roles(account(eng, "jo.bloggs-2")) == ["social_worker", "team_manager"]
    # ...and a change made behind carepath's back (a direct update of the table) lasts until the next sign-in
    with eng.db.transaction() as conn:
        conn.execute(update(users).where(users.c.username == "jo.bloggs-2").values(roles=["auditor"]))
    sign_in(app)
    assert roles(account(eng, "jo.bloggs-2")) == ["social_worker", "team_manager"]
    # no group maps any more: the roles go, the sign-in is refused and the sessions still open end
    fake.user = {**fake.user, "groups": ["grp-unrelated"]}
    _client, r = sign_in(app)
    assert r.status_code == 403 and "You no longer have access to carepath" in page(r)
    assert COOKIE not in r.cookies
    assert roles(account(eng, "jo.bloggs-2")) == []
    assert client.get("/api/me").status_code == 401 and first.get("/api/me").status_code == 401
    assert len(system_events(eng, "user.changed")) == 3  # the groups changed, the direct update undone, removal


def test_a_person_in_no_mapped_group_gets_no_account(env, fake):
    eng, app = env
    fake.user = {**fake.user, "sub": "sub-stranger", "groups": ["grp-unrelated"]}
    client, r = sign_in(app)
    assert r.status_code == 403 and "none of your groups gives access to carepath" in page(r)
    assert "govuk-heading-l" in page(r) and client.get("/api/me").status_code == 401
    assert system_events(eng, "user.created") == []


def test_a_deactivated_account_stays_refused(env, fake):
    eng, app = env
    client, _ = sign_in(app)
    admin.change(eng, tm_user(eng, "ada"), "jo.bloggs-2", active=False)
    _c, r = sign_in(app)
    assert r.status_code == 403 and "Your account is deactivated" in page(r)
    assert client.get("/api/me").status_code == 401
    # however it was deactivated: a direct update of the table
    admin.change(eng, tm_user(eng, "ada"), "jo.bloggs-2", active=True)
    with eng.db.transaction() as conn:
        conn.execute(update(users).where(users.c.username == "jo.bloggs-2").values(active=False))
    _c, r = sign_in(app)
    assert r.status_code == 403 and "deactivated" in page(r)


# ---------------------------------------------------------------------- refusals
def test_a_wrong_state_is_refused(protocol, fake):
    _eng, app = protocol
    client = TestClient(app, raise_server_exceptions=False)
    url = start(client)
    r = back(client, url.replace("state=", "state=x"))
    assert r.status_code == 400 and "its state is wrong" in page(r)
    assert client.get("/api/me").status_code == 401
    # the pending sign-in was used up: the right answer afterwards is refused too (no second try)
    r = back(client, url)
    assert r.status_code == 400 and "does not belong to a sign-in started in this browser" in page(r)


def test_an_answer_without_the_browsers_pending_sign_in_is_refused(protocol, fake):
    _eng, app = protocol
    url = start(TestClient(app))
    other = TestClient(app, raise_server_exceptions=False)  # login CSRF: someone else's answer in this browser
    asked = fake.token_requests
    r = back(other, url)
    assert r.status_code == 400 and "started in this browser" in page(r) and COOKIE not in r.cookies
    assert fake.token_requests == asked and other.get("/api/me").status_code == 401


def test_the_providers_error_is_shown(protocol, fake):
    _eng, app = protocol
    fake.deny_next = True
    client, r = sign_in(app)
    assert r.status_code == 401 and "did not sign you in (access_denied)" in page(r)
    assert "Go back to the sign-in page and try again" in page(r)


def test_a_wrong_nonce_is_refused(protocol, fake):
    _eng, app = protocol
    fake.nonce = "a-nonce-of-another-sign-in"
    client, r = sign_in(app)
    assert r.status_code == 401 and "belongs to another sign-in" in page(r)
    assert client.get("/api/me").status_code == 401


def test_a_token_signed_with_another_key_is_refused(protocol, fake):
    eng, app = protocol
    fake.sign_with = RSAKey.generate_key(2048, parameters={"kid": "fake-key-1"})
    client, r = sign_in(app)
    assert r.status_code == 401 and "signature is not the council's identity provider's" in page(r)
    assert client.get("/api/me").status_code == 401 and system_events(eng, "user.created") == []


def test_a_token_for_another_client_is_refused(protocol, fake):
    _eng, app = protocol
    fake.audience = "some-other-application"
    client, r = sign_in(app)
    assert r.status_code == 401 and "was not issued for carepath (wrong audience)" in page(r)
    assert client.get("/api/me").status_code == 401


def test_an_expired_token_is_refused_after_the_leeway(protocol, fake):
    eng, app = protocol
    issued = eng.now()
    fake.now = lambda: issued  # the provider dates its tokens now; carepath checks them later
    eng.advance_clock(timedelta(seconds=300 + 60 - 5))  # lifetime 300 s, leeway 60 s: still good
    _client, r = sign_in(app)
    assert r.status_code == 200
    eng.advance_clock(timedelta(seconds=6))  # past exp + leeway
    client, r = sign_in(app)
    assert r.status_code == 401 and "Sign-in expired" in page(r)
    assert client.get("/api/me").status_code == 401


def test_a_sign_in_that_took_too_long_is_refused(protocol, fake):
    eng, app = protocol
    client = TestClient(app, raise_server_exceptions=False)
    url = start(client)
    eng.advance_clock(timedelta(minutes=10))
    fake.now = lambda: eng.now()
    r = back(client, url)
    assert r.status_code == 400 and "took more than 10 minutes" in page(r)


def test_an_unreachable_provider_is_a_clear_page(tmp_path, calls, fake):
    eng = Engine(f"sqlite:///{tmp_path / 'carepath.db'}", registry=calls.registry(), forms=FormLibrary())
    eng.init(simulated_start=START)
    closed = OidcSettings(issuer="http://127.0.0.1:9", client_id=CLIENT_ID, client_secret="x", groups=GROUPS,
                          timeout=2)
    client = TestClient(create_app(eng, run_timers=False, identity_provider=closed), raise_server_exceptions=False)
    r = client.get("/sign-in/oidc", follow_redirects=False)
    assert r.status_code == 502 and "could not reach the council's identity provider" in page(r)
    eng.db.dispose()


# ---------------------------------------------------------------------- the sign-in page and settings
def test_the_sign_in_page_offers_the_provider_beside_the_local_form(protocol, fake):
    _eng, app = protocol
    page = TestClient(app).get("/sign-in").text
    assert "Sign in with Northshire Council account" in page and 'id="password"' in page
    # without a provider: no button, and its routes are unknown pages
    plain = TestClient(create_app(_eng, run_timers=False, identity_provider=False), raise_server_exceptions=False)
    assert "Sign in with" not in plain.get("/sign-in").text
    assert plain.get("/sign-in/oidc", follow_redirects=False).status_code == 404
    assert plain.get("/sign-in/oidc/callback?code=x&state=y", follow_redirects=False).status_code == 404


def test_local_accounts_can_be_switched_off(protocol, fake):
    eng, _app = protocol
    app = create_app(eng, run_timers=False, identity_provider=settings_for(fake),
                     auth=AuthSettings(local_accounts=False))
    client = TestClient(app)
    page = client.get("/sign-in").text
    assert "Sign in with Northshire Council account" in page and 'id="password"' not in page
    r = client.post("/api/session", json={"username": "ada", "password": "a long password"})
    assert r.status_code == 403 and "switched off" in r.json()["message"]
    with pytest.raises(CarepathError, match="nobody could sign in"):
        create_app(eng, run_timers=False, identity_provider=False, auth=AuthSettings(local_accounts=False))


def test_the_groups_file_is_checked_with_clear_errors(tmp_path):
    f = tmp_path / "groups.json"
    f.write_text(json.dumps({"groups": {"g1": {"roles": ["social_worker"], "teams": ["social_work"], "note": "SW"},
                                        "g2": {"teams": ["safeguarding"]}}}))
    assert load_groups(f) == {"g1": Grant(frozenset({"social_worker"}), frozenset({"social_work"})),
                              "g2": Grant(frozenset(), frozenset({"safeguarding"}))}
    for content, message in (
            ({"groups": {"g1": {"roles": ["wizard"]}}}, "group 'g1': unknown role 'wizard'"),
            ({"groups": {"g1": {"teams": ["moon"]}}}, "group 'g1': unknown team 'moon'"),
            ({"groups": {"g1": {"roles": "social_worker"}}}, "group 'g1': roles must be a list of names"),
            ({"groups": {"g1": {}}}, "group 'g1': gives no role and no team"),
            ({"groups": {"g1": {"role": ["auditor"]}}}, "unknown key(s) role"),
            ({"g1": {"roles": ["auditor"]}}, "one JSON object with one key, \"groups\"")):
        f.write_text(json.dumps(content))
        with pytest.raises(CarepathError) as exc:
            load_groups(f)
        assert message in str(exc.value) and str(f) in str(exc.value)
    f.write_text("{not json")
    with pytest.raises(CarepathError) as exc:
        load_groups(f)
    assert str(exc.value).startswith(f"the groups file {f} is not JSON: Expecting property name")
    f.unlink()
    with pytest.raises(CarepathError) as exc:
        load_groups(f)
    assert str(exc.value) == f"the groups file {f} cannot be read: No such file or directory"


def test_settings_from_the_environment(tmp_path):
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"groups": {"g1": {"roles": ["auditor"]}}}))
    env = {"CAREPATH_OIDC_ISSUER": "https://login.microsoftonline.com/tenant-id/v2.0/",
           "CAREPATH_OIDC_CLIENT_ID": "client", "CAREPATH_OIDC_CLIENT_SECRET": "s3cret-value",
           "CAREPATH_OIDC_GROUPS_FILE": str(groups), "CAREPATH_OIDC_GROUPS_CLAIM": "roles",
           "CAREPATH_OIDC_NAME": "Northshire Council account"}
    s = oidc_settings(env)
    assert s.issuer == "https://login.microsoftonline.com/tenant-id/v2.0" and s.groups_claim == "roles"
    assert s.leeway == 60 and s.scopes == ("openid", "profile", "email") and "s3cret" not in repr(s)
    assert oidc_settings({}) is None
    for change, message in (({"CAREPATH_OIDC_ISSUER": "http://idp.example"}, "must be an https:// address"),
                            ({"CAREPATH_OIDC_CLIENT_SECRET": ""}, "CAREPATH_OIDC_CLIENT_SECRET"),
                            ({"CAREPATH_OIDC_SCOPES": "profile"}, "must include openid"),
                            ({"CAREPATH_OIDC_LEEWAY": "9000"}, "CAREPATH_OIDC_LEEWAY"),
                            ({"CAREPATH_OIDC_LEEWAY": "\u00b9"}, "CAREPATH_OIDC_LEEWAY"),
                            ({"CAREPATH_OIDC_GROUPS_FILE": ""}, "CAREPATH_OIDC_GROUPS_FILE")):
        with pytest.raises(CarepathError, match=message) as exc:
            oidc_settings({**env, **change})
        assert "s3cret" not in str(exc.value)


def test_an_account_of_the_identity_provider_is_told_where_to_change_its_password(protocol, fake):
    """It has no carepath password (tests/test_own_password.py for local accounts): the page says so and offers
    no form, the API and a posted form answer 403 `oidc_account`, and nothing changes."""
    eng, app = protocol
    client, r = sign_in(app)
    assert r.status_code == 200
    csrf = client.get("/api/me").json()["csrf_token"]
    before = account(eng, "jo.bloggs-2").password_hash
    shown = client.get("/account/password", headers={"Accept": "text/html"})
    assert shown.status_code == 200 and "identity provider and has no carepath password" in page(shown)
    assert 'name="current_password"' not in shown.text
    r = client.put("/api/session/password", json={"current_password": "!oidc", "new_password": "lantern orbit kettle"},
                   headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403 and r.json()["error"] == "oidc_account"
    assert "change your password where you sign in to the council's other systems" in r.json()["message"]
    r = client.post("/account/password", data={"csrf_token": csrf, "current_password": "!oidc",
                                               "new_password": "lantern orbit kettle",
                                               "confirm_password": "lantern orbit kettle"},
                    headers={"Accept": "text/html"})
    assert r.status_code == 403 and "has no carepath password" in page(r)
    assert account(eng, "jo.bloggs-2").password_hash == before
    assert client.get("/api/me").status_code == 200
