"""User administration and case restriction (JSON API and pages).

* Users (`/api/admin/users`, `/admin/users`; administrators only): list, create, change display
  name, roles and teams, deactivate and reactivate (their sessions end at once, either way), unlock, set a new
  password (their sessions end). An administrator cannot remove their own administrator role or
  deactivate themselves, so the council always keeps one. Every change is appended to the system
  history chain (`user.created`, `user.changed`, `user.unlocked`, `user.password_set`) in the same
  transaction as the change; no password or hash is ever written there.
* Dual control (`role_requests`, `/api/admin/role-requests`, the users page; docs/security.md "Privileged
  access"): what would let one administrator reach case records or act as a second administrator waits for
  another one to approve it — a new account with the administrator role or a role that opens case records (kept
  deactivated and with no role until then), such a role (or, with a casework role, a team) given to any account,
  and a new password or second-factor reset for an account holding one. Neither the requester, nor the account
  changed, nor an account whose password the requester chose (or that chose the requester's) may decide it.
  A role change's request holds only what adds access (the rest applies at once); approving it adds that to the
  account as it is then, or is refused (409) when the request has gone stale (`_outcome`).
* Case restriction (`/api/cases/{id}/restriction`, `/admin/restrictions`; administrators and team
  managers): name the users who alone may open a case, or lift the restriction. Recorded in the
  case's own history (`case.restricted`, `case.unrestricted`) in the same transaction.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import delete, insert, select, update
from starlette.concurrency import run_in_threadpool

from engine import history
from engine.clock import as_utc
from engine.errors import NotFoundError
from engine.history import Event
from engine.schema import cases, events, role_requests
from handlers.people import check_name

from . import auth, page_kit
from .access import (
    MEASURES_ROLES,
    can_open_case,
    case_access,
    coordinating_worker,
    log_access,
    named_users,
    open_tasks_of_case,
    refusal,
    restriction,
    stranded_tasks,
)
from .auth import (
    OVERSIGHT_ROLES,
    RESERVED_USERNAMES,
    ROLES,
    TEAMS,
    USERNAME_RE,
    WORKER_ROLES,
    User,
    require_roles,
    restricted_cases,
    sessions,
    sign_in_throttle,
    users,
)
from .errors import ApiError, forbidden
from .inputs import Id
from .oidc import is_linked, linked_username
from .passwords import MAX_PASSWORD, password_problem
from .subject_access import SAR_ROLES

router = APIRouter()

ADMIN = "administrator"
RESTRICT_ROLES = (ADMIN, "team_manager")


class Invalid(ApiError):
    def __init__(self, by_field: dict[str, str]) -> None:
        super().__init__(422, "invalid", "; ".join(by_field.values()),
                         errors=[{"field": k, "message": v} for k, v in by_field.items()])
        self.by_field = by_field


# ---------------------------------------------------------------------- users: rules
def _row_dict(row: Any, now: Any, pending: dict[str, Any] | None = None) -> dict[str, Any]:
    locked = row.locked_until is not None and as_utc(row.locked_until) > now
    return {"username": row.username, "display_name": row.display_name, "roles": sorted(auth._json(row.roles)),
            "teams": sorted(auth._json(row.teams)), "active": bool(row.active), "locked": locked,
            "locked_until": as_utc(row.locked_until) if locked else None,
            "created_at": as_utc(row.created_at), "mfa_enabled": bool(row.mfa_enabled),
            # an administrator chose the password: its owner changes it at their next sign-in
            "password_change_due": bool(row.password_change_due), "pending_request": pending}


def _check_password(password: str, errors: dict[str, str], username: str = "", display_name: str = "") -> None:
    """Length, not the username, not a common password, not easy to guess (api/passwords.py: NCSC password
    guidance, zxcvbn)."""
    problem = password_problem(password, username, display_name)
    if problem:
        errors["password"] = problem


def _check_lists(roles: list[str], teams: list[str], errors: dict[str, str]) -> None:
    bad_roles = [r for r in roles if r not in ROLES]
    bad_teams = [t for t in teams if t not in TEAMS]
    if bad_roles:
        errors["roles"] = f"Unknown role: {', '.join(bad_roles)[:200]}"
    elif not roles:
        errors["roles"] = "Select at least one role"
    if bad_teams:
        errors["teams"] = f"Unknown team: {', '.join(bad_teams)[:200]}"


def _check_display_name(name: str, errors: dict[str, str]) -> str:
    """The member of staff's name as every page, history and subject access export shows who acted: the same rule
    as a person's name (`handlers.people.check_name`: no character that hides or reorders letters — a
    right-to-left override, a zero-width space), and a letter or digit in it."""
    name = " ".join(name.split())
    hidden = check_name(name, "Name")
    if not name:
        errors["display_name"] = "Enter the person's name"
    elif len(name) > 255:
        errors["display_name"] = "Name must be 255 characters or fewer"
    elif hidden:
        errors["display_name"] = hidden
    elif not any(c.isalnum() for c in name):
        errors["display_name"] = "Enter the person's name in letters"
    return name


def _reason_problem(reason: str, empty: str) -> str | None:
    """What is wrong with the reason for a privileged act (a restriction made or lifted, a request refused), the
    audit record of why: missing, too long, with a character that hides or reorders letters
    (`handlers.people.check_name`), or nothing to read (no letter or digit)."""
    if not reason:
        return empty
    if len(reason) > 500:
        return "Reason must be 500 characters or fewer"
    hidden = check_name(reason, "Reason", noun="reason")
    if hidden:
        return hidden
    if not any(c.isalnum() for c in reason):
        return "Enter the reason in words"
    return None


def _audit(conn: Any, engine: Any, now: Any, type_: str, data: dict[str, Any], actor: User) -> None:
    history.append(conn, history.SYSTEM_CHAIN, None, now, [Event(type_, data, actor=actor.username)],
                   lock=engine.db.is_postgres)


def _load(conn: Any, username: str) -> Any:
    row = conn.execute(engine_for_update(conn, select(users).where(users.c.username == username))).first()
    if row is None:
        raise NotFoundError(f"no user {username!r}", user=username)
    return row


def engine_for_update(conn: Any, query: Any) -> Any:
    return query.with_for_update() if conn.dialect.name == "postgresql" else query


def _pending_dict(r: Any) -> dict[str, Any]:
    """An account's `pending_request`: the same wherever it is answered (GET, and a change's answer)."""
    return {"id": r.id, "kind": r.kind, "status": "pending", "requested_by": r.requested_by,
            "adds": list(auth._json(r.added))}


def _pending_by_user(conn: Any) -> dict[str, dict[str, Any]]:
    rows = conn.execute(select(role_requests.c.id, role_requests.c.username, role_requests.c.kind,
                               role_requests.c.requested_by, role_requests.c.added)
                        .where(role_requests.c.status == "pending")).all()
    return {r.username: _pending_dict(r) for r in rows}


def list_users(engine: Any) -> list[dict[str, Any]]:
    with engine.db.engine.connect() as conn:
        now = engine.now(conn)
        rows = conn.execute(select(users).order_by(users.c.username)).all()
        pending = _pending_by_user(conn)
    return [_row_dict(r, now, pending.get(r.username)) for r in rows]


def get_user(engine: Any, username: str) -> dict[str, Any]:
    with engine.db.engine.connect() as conn:
        now = engine.now(conn)
        row = conn.execute(select(users).where(users.c.username == username)).first()
        pending = _pending_by_user(conn).get(username)
    if row is None:
        raise NotFoundError(f"no user {username!r}", user=username)
    return _row_dict(row, now, pending)


# ---------------------------------------------------------------------- what needs a second administrator
# Roles that open case records or the cases behind figures (api/auth.py, api/access.py, docs/security.md):
# casework roles (their teams' tasks and cases), oversight roles (any unrestricted case) and the performance role
# (the cases behind the measures). The data protection role too: it exports everything held about a person,
# restricted cases included (api/subject_access.py).
CASE_OPENING_ROLES = WORKER_ROLES | OVERSIGHT_ROLES | MEASURES_ROLES | frozenset(SAR_ROLES)
# ...and with the administrator role, which changes everyone's access (and approves these requests): an account
# holding one of these is a *privileged* account. Giving an account one of them (a new account included), or
# setting a privileged account's password or resetting its second factor, waits for a second administrator
# (`role_requests`); so does an administrator adding a case-opening role or team to their own account.
PRIVILEGED_ROLES = CASE_OPENING_ROLES | {ADMIN}
STATUSES = ("pending", "approved", "refused")
# what waits: roles (and teams) of an existing account, a new account, a new password, a second-factor reset;
# and the events each writes: user.<prefix>_requested / _approved / _refused
KINDS = {"roles": "role_change", "account": "account", "password": "password_change", "mfa_reset": "mfa_reset"}


def adds_case_access(old_roles: list[str], old_teams: list[str], roles: list[str], teams: list[str]) -> list[str]:
    """What a change of roles and teams adds that opens cases: roles, and "team:<name>" for a team added while
    (after the change) holding a casework role. Empty: the change opens nothing new."""
    added = sorted((set(roles) - set(old_roles)) & CASE_OPENING_ROLES)
    if set(roles) & WORKER_ROLES:
        added += [f"team:{t}" for t in sorted(set(teams) - set(old_teams))]
    return added


def adds_privilege(old_roles: list[str], old_teams: list[str], roles: list[str], teams: list[str]) -> list[str]:
    """`adds_case_access`, and the administrator role when it is added."""
    admin = [ADMIN] if ADMIN in roles and ADMIN not in old_roles else []
    return admin + adds_case_access(old_roles, old_teams, roles, teams)


def split_adds(added: Any) -> tuple[list[str], list[str]]:
    """The roles and the teams in a request's `adds` (its `added` column): what a role change adds."""
    added = list(auth._json(added))
    return ([a for a in added if not a.startswith("team:")],
            [a.removeprefix("team:") for a in added if a.startswith("team:")])


def is_privileged(roles: Any) -> bool:
    return bool(set(auth._json(roles)) & PRIVILEGED_ROLES)


def _waiting(conn: Any, username: str) -> Any:
    return conn.execute(select(role_requests.c.id, role_requests.c.kind, role_requests.c.requested_by).where(
        role_requests.c.username == username, role_requests.c.status == "pending")).first()


def _refuse_while_new(conn: Any, username: str) -> None:
    """A new account waiting for approval changes only through that request (approve or refuse it)."""
    waiting = _waiting(conn, username)
    if waiting is not None and waiting.kind == "account":
        raise ApiError(409, "conflict", f"{username} is a new account waiting for a second administrator to approve "
                       f"it (request {waiting.id}): approve or refuse it on the users page first",
                       request=waiting.id)


def _request(conn: Any, engine: Any, now: Any, admin: User, username: str, kind: str, roles: list[str],
             teams: list[str], added: list[str], password_hash: str | None = None) -> dict[str, Any]:
    """A change that waits for a second administrator; one at a time per account (409 while one waits)."""
    waiting = _waiting(conn, username)
    if waiting is not None:
        whose = "Your earlier role change" if username == admin.username and waiting.kind == "roles" else \
            f"An earlier change to {username}'s account"
        raise ApiError(409, "conflict", f"{whose} (request {waiting.id}) is still waiting for another administrator: "
                       "ask them to approve or refuse it first", request=waiting.id)
    new_id = conn.execute(insert(role_requests).values(
        username=username, requested_by=admin.username, kind=kind, roles=sorted(set(roles)), teams=sorted(set(teams)),
        added=added, status="pending", created_at=now, password_hash=password_hash)).inserted_primary_key[0]
    _audit(conn, engine, now, f"user.{KINDS[kind]}_requested", {
        "request": new_id, "username": username, "roles": sorted(set(roles)), "teams": sorted(set(teams)),
        "adds": added}, admin)
    return {"id": new_id, "kind": kind, "status": "pending", "requested_by": admin.username, "adds": added}


def password_set_by(conn: Any, username: str) -> str | None:
    """Who chose the account's current password: the administrator who created the account or last set it
    (from the system history: `user.created`, `user.password_set`), or None when no administrator did (the
    first administrator, the demo users and accounts made by the operator with `api.auth.create_user`, or an
    account made by the identity provider's sign-in). Its owner changing it later (`user.password_changed`) does
    not undo the link: whoever chose the first password could have been the one who changed it."""
    rows = conn.execute(select(events.c.type, events.c.actor, events.c.data).where(
        events.c.chain == history.SYSTEM_CHAIN, events.c.type.in_(("user.created", "user.password_set")),
        events.c.data.contains(f'"username":"{username}"', autoescape=True)).order_by(events.c.seq.desc()))
    for row in rows:
        data = json.loads(row.data)
        if data.get("username") == username:
            return None if row.actor == "oidc" else data.get("set_by", row.actor)
    return None


def create(engine: Any, admin: User, username: str, display_name: str, password: str, roles: list[str],
           teams: list[str]) -> dict[str, Any]:
    """A new account. One with the administrator role or a role that opens case records is made deactivated and
    with no role: the roles and teams asked for wait for a second administrator (`pending_request`), who
    approves them and the account together (`decide`)."""
    errors: dict[str, str] = {}
    username = username.strip().lower()
    if not USERNAME_RE.match(username):
        errors["username"] = ("Username must be 2 to 64 characters: lower-case letters, numbers, '.', '_' or '-', "
                              "starting with a letter or number")
    elif username in RESERVED_USERNAMES:
        errors["username"] = (f"Username {username} is kept for what carepath records as done by no person "
                              "(the history would show this person's actions as the system's): choose another")
    display_name = _check_display_name(display_name, errors)
    _check_password(password, errors, username, display_name)
    _check_lists(roles, teams, errors)
    if errors:
        raise Invalid(errors)
    roles, teams = sorted(set(roles)), sorted(set(teams))
    added = adds_privilege([], teams, roles, teams)  # the roles (the card shows the teams beside them)
    hashed = auth._hasher.hash(password)
    with engine.db.transaction() as conn:
        if conn.execute(select(users.c.id).where(users.c.username == username)).first() is not None:
            raise Invalid({"username": f"There is already a user called {username}"})
        now = engine.now(conn)
        held = bool(added)
        conn.execute(insert(users).values(
            username=username, display_name=display_name, password_hash=hashed, roles=[] if held else roles,
            teams=[] if held else teams, failed_attempts=0, locked_until=None, active=not held, created_at=now,
            password_change_due=True))  # the administrator knows it: its owner chooses their own first
        _audit(conn, engine, now, "user.created", {"username": username, "display_name": display_name,
                                                   "roles": [] if held else roles, "teams": [] if held else teams,
                                                   **({"active": False} if held else {})}, admin)
        # usable only once a second administrator approves it
        pending = _request(conn, engine, now, admin, username, "account", roles, teams, added) if held else None
    return {**get_user(engine, username), "waits": pending is not None}


def change(engine: Any, admin: User, username: str, *, display_name: str | None = None,
           roles: list[str] | None = None, teams: list[str] | None = None, active: bool | None = None
           ) -> dict[str, Any]:
    errors: dict[str, str] = {}
    if display_name is not None:
        display_name = _check_display_name(display_name, errors)
    if roles is not None or teams is not None:
        _check_lists(roles if roles is not None else [ADMIN], teams or [], errors)
    if username == admin.username:
        if roles is not None and ADMIN not in roles:
            errors["roles"] = "You cannot remove your own administrator role: ask another administrator"
        if active is False:
            errors["active"] = "You cannot deactivate your own account: ask another administrator"
    if errors:
        raise Invalid(errors)
    with engine.db.transaction() as conn:
        row = _load(conn, username)
        now = engine.now(conn)
        old = {"display_name": row.display_name, "roles": sorted(auth._json(row.roles)),
               "teams": sorted(auth._json(row.teams)), "active": bool(row.active)}
        new = {"display_name": display_name, "roles": sorted(set(roles)) if roles is not None else None,
               "teams": sorted(set(teams)) if teams is not None else None, "active": active}
        changes = {k: {"from": old[k], "to": v} for k, v in new.items() if v is not None and v != old[k]}
        if set(changes) - {"display_name"}:
            _refuse_while_new(conn, username)
        if ("roles" in changes or "teams" in changes) and is_linked(conn, row.id):
            # roles come only from the identity provider's groups (api/oidc.py, docs/security.md)
            raise Invalid({"roles": f"{username} signs in through the council's identity provider: their roles and "
                                    "teams come from their groups there, so change the groups"})
        pending = None
        if "roles" in changes or "teams" in changes:
            want_roles = changes["roles"]["to"] if "roles" in changes else old["roles"]
            want_teams = changes["teams"]["to"] if "teams" in changes else old["teams"]
            added = adds_privilege(old["roles"], old["teams"], want_roles, want_teams)
            if added:
                # what adds access waits for another administrator: the request holds exactly that (`added`: the
                # roles and teams it adds), and approving it adds them to the account as it is then (`decide`).
                # The rest is saved now — the name, and what takes access away or opens nothing (the same as
                # making that change alone): a role or team taken away is never held back by a request.
                pending = _request(conn, engine, now, admin, username, "roles", want_roles, want_teams, added)
                held_roles, held_teams = split_adds(added)
                for key, held in (("roles", held_roles), ("teams", held_teams)):
                    if key in changes:
                        now_to = sorted(set(changes[key]["to"]) - set(held))
                        if now_to == old[key]:
                            changes.pop(key)
                        else:
                            changes[key]["to"] = now_to
        if changes:
            conn.execute(update(users).where(users.c.id == row.id).values(
                **{k: c["to"] for k, c in changes.items()}))
            data: dict[str, Any] = {"username": username, "changes": changes}
            if "active" in changes:
                # signed out everywhere: deactivated, their sessions end now; reactivated, a session from before
                # (one a deactivation other than this page's left in place: `carepath user`, the database) never
                # comes back
                data["sessions_ended"] = conn.execute(delete(sessions).where(sessions.c.user_id == row.id)).rowcount
            _audit(conn, engine, now, "user.changed", data, admin)
    # `pending_request`: whatever waits for this account (made now or before, as GET answers it); `waits`: whether
    # something this change asked waits for a second administrator (the API's 202)
    return {**get_user(engine, username), "waits": pending is not None}


def _added_by(r: Any) -> tuple[list[str], list[str]]:
    """The roles and teams a request adds to the account: a new account's, all it asked for (it holds none while
    it waits); a role change's, those in its `adds` (all it holds back); nothing for a password or a reset."""
    if r.kind == "account":
        return sorted(auth._json(r.roles)), sorted(auth._json(r.teams))
    if r.kind == "roles":
        return split_adds(r.added)
    return [], []


def _request_dict(r: Any) -> dict[str, Any]:
    roles_added, teams_added = _added_by(r)
    return {"id": r.id, "kind": r.kind, "username": r.username, "requested_by": r.requested_by,
            "roles": sorted(auth._json(r.roles)), "teams": sorted(auth._json(r.teams)),
            "adds": list(auth._json(r.added)), "roles_added": roles_added, "teams_added": teams_added,
            "status": r.status, "created_at": as_utc(r.created_at),
            "decided_by": r.decided_by, "decided_at": as_utc(r.decided_at) if r.decided_at is not None else None,
            "decision_reason": r.decision_reason}


def _outcome(conn: Any, r: Any, target: Any) -> tuple[dict[str, list[str]], str | None]:
    """What approving the request `r` now would leave the account `target` holding (its roles and teams), and why
    it can no longer be approved (None: it can). A role change adds what it asked to add to the account as it is
    now: what was taken away meanwhile stays away, what was added meanwhile stays. It is stale (409 on approval:
    refuse it, and ask again if still needed) when the account is deactivated or now signs in through the
    identity provider, when nothing is left for it to add, or when approving it would open more case records
    than it showed: a casework role, asked for an account without one, would open the cases of a team added to
    the account meanwhile (a team opens nothing without a casework role, so adding it was not held)."""
    roles, teams = sorted(auth._json(target.roles)), sorted(auth._json(target.teams))
    if r.kind != "roles":
        if r.kind == "account":
            roles, teams = sorted(auth._json(r.roles)), sorted(auth._json(r.teams))
        return {"roles": roles, "teams": teams}, _unappliable(conn, r, target)
    roles_added, teams_added = split_adds(r.added)
    after = {"roles": sorted(set(roles) | set(roles_added)), "teams": sorted(set(teams) | set(teams_added))}
    why = _unappliable(conn, r, target)
    if why is None and after == {"roles": roles, "teams": teams}:
        why = f"{r.username} already holds everything this request adds: refuse it"
    if why is None and set(after["roles"]) & WORKER_ROLES and not set(roles) & WORKER_ROLES:
        unseen = sorted(set(teams) - set(auth._json(r.teams)))
        if unseen:
            names = ", ".join(t.replace("_", " ") for t in unseen)
            why = (f"{r.username}'s teams changed since this was asked: approving it now would also open the cases "
                   f"of {names}, which the request did not show. Refuse it, and ask again if it is still needed")
    return after, why


def _unappliable(conn: Any, r: Any, target: Any) -> str | None:
    """Why an approved request could no longer be applied to the account (None: it can)."""
    if r.kind == "roles" and not target.active:
        return f"{r.username}'s account is deactivated: refuse the request"
    if r.kind in ("roles", "password") and is_linked(conn, target.id):
        return f"{r.username} now signs in through the council's identity provider: refuse the request"
    if r.kind == "account" and target.active:
        return f"{r.username}'s account is already active: refuse the request"
    if r.kind == "password" and not r.password_hash:
        return "The new password is no longer kept: refuse the request"
    return None


def list_requests(engine: Any, *, decided: int = 20) -> list[dict[str, Any]]:
    """The requests waiting for a decision (oldest first), then the latest `decided` ones decided. A waiting one
    says what approving it now would do: the account's roles and teams `now` and `after`, and `stale`, why it can
    no longer be approved (`_outcome`), else None."""
    with engine.db.engine.connect() as conn:
        waiting = conn.execute(select(role_requests).where(role_requests.c.status == "pending")
                               .order_by(role_requests.c.id)).all()
        done = conn.execute(select(role_requests).where(role_requests.c.status != "pending")
                            .order_by(role_requests.c.id.desc()).limit(decided)).all()
        accounts = {a.username: a for a in conn.execute(select(users).where(
            users.c.username.in_({q.username for q in waiting})))} if waiting else {}
        out = []
        for r in waiting:
            q = {**_request_dict(r), "display_name": None, "now": None, "after": None, "stale": None}
            target = accounts.get(r.username)
            if target is not None:
                after, stale = _outcome(conn, r, target)
                q.update(display_name=target.display_name, after=after, stale=stale,
                         now={"roles": sorted(auth._json(target.roles)), "teams": sorted(auth._json(target.teams))})
            out.append(q)
    return out + [{**_request_dict(r), "display_name": None} for r in done]


def may_decide(conn: Any, admin: User, requester: str, username: str) -> str | None:
    """Why `admin` may not decide a request `requester` made about `username`'s account, or None.

    Never one's own request, nor one about one's own account; and never between two accounts one of which
    chose the other's current password: that person could be signing in as either (the lone-administrator
    route around dual control: create or re-password a second administrator account and approve one's own
    requests with it)."""
    if admin.username in (requester, username):
        return "You cannot decide a change you asked for or a change to your own account: another administrator must"
    if password_set_by(conn, admin.username) == requester:
        return (f"You cannot decide {requester}'s request: {requester} chose your account's password, so they "
                "could be signing in as you. Another administrator must")
    if password_set_by(conn, requester) == admin.username:
        return (f"You cannot decide {requester}'s request: you chose {requester}'s password, so the request could be "
                "yours. Another administrator must")
    return None


def decide(engine: Any, admin: User, request_id: int, approve: bool, reason: str = "") -> dict[str, Any]:
    """Another administrator approves (the change is applied) or refuses a pending request; the requester, the
    account it changes and an account linked to the requester by a password one of them chose cannot decide it
    (`may_decide`)."""
    reason = " ".join(reason.split())
    problem = _reason_problem(reason, "") if reason else None  # optional; when given, it must be readable
    if problem:
        raise Invalid({"reason": problem})
    with engine.db.transaction() as conn:
        row = conn.execute(engine_for_update(conn, select(role_requests).where(role_requests.c.id == request_id))
                           ).first()
        if row is None:
            raise NotFoundError(f"no role change request {request_id}", request=request_id)
        why_not = may_decide(conn, admin, row.requested_by, row.username)
        if why_not:
            raise forbidden(why_not)
        if row.status != "pending":
            raise ApiError(409, "conflict", f"This request was already {row.status} by {row.decided_by}",
                           request=request_id)
        now = engine.now(conn)
        after = None
        if approve:  # checked before anything is written: a stale request is refused (409), nothing changed
            target = _load(conn, row.username)
            after, why_not = _outcome(conn, row, target)
            if why_not:
                raise ApiError(409, "conflict", why_not, request=request_id)
        conn.execute(update(role_requests).where(role_requests.c.id == row.id).values(
            status="approved" if approve else "refused", decided_by=admin.username, decided_at=now,
            decision_reason=reason or None, password_hash=None))
        data = {"request": row.id, "username": row.username, "requested_by": row.requested_by,
                "adds": list(auth._json(row.added)), "reason": reason or None}
        prefix = f"user.{KINDS[row.kind]}"
        if approve:
            _audit(conn, engine, now, f"{prefix}_approved", data, admin)
            _apply_audit(conn, engine, now, admin, row, target, after)
        else:
            _audit(conn, engine, now, f"{prefix}_refused", data, admin)
        out = conn.execute(select(role_requests).where(role_requests.c.id == row.id)).one()
    return _request_dict(out)


def _apply_audit(conn: Any, engine: Any, now: Any, admin: User, row: Any, target: Any,
                 after: dict[str, list[str]] | None) -> None:
    """Apply an approved request to the account, audited as the same change made directly would be (with the
    request's id; actor the approving administrator). A role change or a new account: the roles and teams
    `_outcome` worked out (`after`)."""
    if row.kind in ("roles", "account"):
        assert after is not None
        old = {"roles": sorted(auth._json(target.roles)), "teams": sorted(auth._json(target.teams))}
        new = after
        changes = {k: {"from": old[k], "to": new[k]} for k in old if old[k] != new[k]}
        if row.kind == "account":
            changes["active"] = {"from": False, "to": True}
        if changes:
            conn.execute(update(users).where(users.c.id == target.id).values(
                **{k: c["to"] for k, c in changes.items()}))
        _audit(conn, engine, now, "user.changed", {"username": row.username, "changes": changes,
                                                   "request": row.id}, admin)
    elif row.kind == "password":
        conn.execute(update(users).where(users.c.id == target.id).values(password_hash=row.password_hash,
                                                                         password_change_due=True))
        ended = conn.execute(delete(sessions).where(sessions.c.user_id == target.id)).rowcount
        _audit(conn, engine, now, "user.password_set", {"username": row.username, "sessions_ended": ended,
                                                        "request": row.id, "set_by": row.requested_by}, admin)
    elif row.kind == "mfa_reset":
        from .mfa import apply_reset

        apply_reset(conn, engine, now, target, admin, request=row.id)


def unlock(engine: Any, admin: User, username: str) -> dict[str, Any]:
    with engine.db.transaction() as conn:
        row = _load(conn, username)
        now = engine.now(conn)
        conn.execute(update(users).where(users.c.id == row.id).values(failed_attempts=0, locked_until=None))
        # the back-off of every address on this account (api/auth.py); an address's own spray limit stays
        conn.execute(delete(sign_in_throttle).where(sign_in_throttle.c.key.startswith(f"a:{username}|",
                                                                                        autoescape=True)))
        _audit(conn, engine, now, "user.unlocked", {"username": username}, admin)
    return get_user(engine, username)


def set_password(engine: Any, admin: User, username: str, password: str) -> dict[str, Any]:
    """A new password (the account's sessions end). For someone else's account that holds the administrator role
    or a role that opens case records it waits for a second administrator (`pending_request`): whoever knows an
    account's password can sign in as it."""
    with engine.db.engine.connect() as conn:
        row = conn.execute(select(users.c.display_name).where(users.c.username == username)).first()
    if row is None:
        raise NotFoundError(f"no user {username!r}", user=username)
    errors: dict[str, str] = {}
    _check_password(password, errors, username, row.display_name)
    if errors:
        raise Invalid(errors)
    hashed = auth._hasher.hash(password)
    pending = None
    with engine.db.transaction() as conn:
        row = _load(conn, username)
        now = engine.now(conn)
        if is_linked(conn, row.id):  # a password would open the account without the provider's sign-in
            raise Invalid({"password": f"{username} signs in through the council's identity provider and has no "
                                       "carepath password"})
        _refuse_while_new(conn, username)
        if username != admin.username and is_privileged(row.roles):
            pending = _request(conn, engine, now, admin, username, "password", auth._json(row.roles),
                               auth._json(row.teams), ["password"], password_hash=hashed)
        else:
            # someone else's: its owner must choose their own at their next sign-in (one's own: chosen already)
            conn.execute(update(users).where(users.c.id == row.id).values(
                password_hash=hashed, password_change_due=username != admin.username))
            ended = conn.execute(delete(sessions).where(sessions.c.user_id == row.id)).rowcount
            _audit(conn, engine, now, "user.password_set", {"username": username, "sessions_ended": ended}, admin)
    return {**get_user(engine, username), "waits": pending is not None}


def reset_mfa(engine: Any, admin: User, username: str) -> dict[str, Any]:
    """Switch off someone else's second factor (api/mfa.py). Never one's own (403); for an account holding the
    administrator role or a role that opens case records, with it on, it waits for a second administrator: with
    the password, whoever reset it could set it up again on their own phone and sign in as them."""
    if not admin.has(ADMIN):
        raise forbidden("this needs one of the roles: administrator")
    if username == admin.username:
        raise forbidden("you cannot reset two-step verification on your own account: another administrator must")
    from .mfa import apply_reset

    pending = None
    with engine.db.transaction() as conn:
        row = _load(conn, username)
        now = engine.now(conn)
        if row.mfa_enabled and is_privileged(row.roles):
            pending = _request(conn, engine, now, admin, username, "mfa_reset", auth._json(row.roles),
                               auth._json(row.teams), ["second factor reset"])
        else:
            apply_reset(conn, engine, now, row, admin)
    out = get_user(engine, username)
    return {"username": username, "mfa_enabled": out["mfa_enabled"], "pending_request": out["pending_request"],
            "waits": pending is not None}


# ---------------------------------------------------------------------- restriction: rules
def _case_reference(engine: Any, case_id: int) -> str:
    with engine.db.engine.connect() as conn:
        row = conn.execute(select(cases.c.reference).where(cases.c.id == case_id)).first()
    if row is None:
        raise NotFoundError(f"no case {case_id}", case=case_id)
    return row.reference


def _may_restrict(engine: Any, user: User, case_id: int) -> None:
    """Administrators: any case. Team managers: a case they may open (restricted ones only when named)."""
    if user.has(ADMIN):
        return
    ok, reason = can_open_case(engine, user, case_id)
    if not ok:
        log_access(engine, case_id, user, "restriction", outcome="refused")
        raise refusal(case_id, reason)


def get_restriction(engine: Any, user: User, case_id: int) -> dict[str, Any]:
    reference = _case_reference(engine, case_id)
    _may_restrict(engine, user, case_id)
    with engine.db.engine.connect() as conn:
        allowed = restriction(conn, case_id)
    return {"case_id": case_id, "reference": reference, "restricted": allowed is not None,
            "allowed": sorted(allowed or [])}


def _no_self_grant(engine: Any, user: User, case_id: int, names: list[str], hand_to: str | None) -> tuple[
        dict[str, str], list[str]]:
    """The privileged-access rules of a restriction (docs/security.md "Privileged access"): ({field: message}
    when refused, the ids of the open tasks to give to `hand_to`).

    * The person restricting may name themselves only if they may open the case already: restricting never
      grants access; and never themselves alone.
    * Every open task stays with someone named who may act on it (its team, assignee or candidate users), or
      is handed on explicitly to a named casework user (`hand_to`): no team silently loses its work.
    * With no open task, the case's co-ordinating worker (if one is set) stays named."""
    errors: dict[str, str] = {}
    with engine.db.engine.connect() as conn:
        already = case_access(conn, user, case_id, restriction(conn, case_id))[0]
        open_tasks = open_tasks_of_case(conn, case_id)
        stranded = stranded_tasks(conn, case_id, names)
        coordinator = coordinating_worker(conn, case_id)
        receiver = named_users(conn, [hand_to]) if hand_to else []
        # besides the person restricting, someone named who works cases: naming alongside oneself only people
        # who open no case record (an administrator, a process owner) or only read them (an auditor), or
        # accounts that are deactivated, is restricting the case to oneself alone
        colleagues = [u for u in named_users(conn, [n for n in names if n != user.username]) if u.is_worker]
    if names == [user.username] or (user.username in names and not colleagues):
        errors["usernames"] = ("You cannot restrict a case to yourself alone: also name someone who works on the "
                               "case (a member of the team of its open tasks, or its co-ordinating worker)")
    elif user.username in names and not already:
        errors["usernames"] = ("You cannot name yourself: you cannot open this case now, and restricting a case "
                               "must not give you access to it. Name the people who work on the case, or ask a "
                               "team manager of its team")
    if errors:
        return errors, []
    if hand_to:
        if hand_to not in names:
            errors["hand_to"] = f"The person the work is handed to ({hand_to[:64]}) must be one of the people named"
        elif not receiver or not receiver[0].is_worker:
            errors["hand_to"] = f"{hand_to[:64]} cannot take the work: hand it to an active casework user"
        return errors, [t["id"] for t in stranded] if not errors else []
    if stranded:
        first = stranded[0]
        team = (first.get("team") or "").replace("_", " ")
        with_other = first.get("assignee") and first["assignee"] not in names
        errors["usernames"] = (
            (f"“{first['name']}” is with {first['assignee']}, who is not named: name them" if with_other else
             f"Name at least one person from the {team} team, who is working on “{first['name']}”")
            + (f" and {len(stranded) - 1} more open task{'s' if len(stranded) > 2 else ''}" if len(stranded) > 1
               else "")
            + ", or hand the work to one of the people named: otherwise no one could see or finish it")
    elif not open_tasks and coordinator and coordinator not in names:
        errors["usernames"] = (f"Name the case's co-ordinating worker ({coordinator}), or set another co-ordinating "
                               "worker first")
    return errors, []


def restrict(engine: Any, user: User, case_id: int, usernames: list[str], reason: str,
             hand_to: str | None = None) -> dict[str, Any]:
    _case_reference(engine, case_id)
    _may_restrict(engine, user, case_id)
    names = sorted({u.strip().lower() for u in usernames if u.strip()})
    errors: dict[str, str] = {}
    reason = " ".join(reason.split())
    if not names:
        errors["usernames"] = "Name at least one person who may open the case"
    elif len(names) > 50:
        errors["usernames"] = "Name 50 people or fewer"
    problem = _reason_problem(reason, "Enter why the case is restricted")
    if problem:
        errors["reason"] = problem
    if names and "usernames" not in errors:
        with engine.db.engine.connect() as conn:
            found = {r.username: r.active for r in conn.execute(
                select(users.c.username, users.c.active).where(users.c.username.in_(names)))}
        unknown = [n for n in names if n not in found]
        inactive = [n for n in names if n in found and not found[n]]
        if unknown:
            errors["usernames"] = f"There is no user called {', '.join(unknown)[:200]}"
        elif inactive:
            errors["usernames"] = f"{', '.join(inactive)[:200]} cannot be named: their account is deactivated"
    hand_to = (hand_to or "").strip().lower() or None
    handed: list[str] = []
    if not errors:
        errors, handed = _no_self_grant(engine, user, case_id, names, hand_to)
    if errors:
        raise Invalid(errors)
    for task_id in handed:  # given to the named person first: a conflict leaves the case unrestricted
        engine.assign(task_id, hand_to, actor=user.username, owner=hand_to)
    with engine.db.transaction() as conn:
        now = engine.now(conn)
        before = restriction(conn, case_id)
        if before is None:
            conn.execute(insert(restricted_cases).values(case_id=case_id, allowed=names))
        else:
            conn.execute(update(restricted_cases).where(restricted_cases.c.case_id == case_id)
                         .values(allowed=names))
        history.append(conn, history.case_chain(case_id), case_id, now, [Event(
            "case.restricted", {"allowed": names, "previously": sorted(before) if before is not None else None,
                                "reason": reason, **({"handed_to": hand_to, "tasks": handed} if handed else {})},
            actor=user.username)], lock=engine.db.is_postgres)
    return get_restriction(engine, user, case_id) if user.has(ADMIN) or user.username in names else {
        "case_id": case_id, "reference": _case_reference(engine, case_id), "restricted": True, "allowed": names}


def unrestrict(engine: Any, user: User, case_id: int, reason: str) -> dict[str, Any]:
    _case_reference(engine, case_id)
    _may_restrict(engine, user, case_id)
    reason = " ".join(reason.split())
    problem = _reason_problem(reason, "Enter why the restriction is lifted")
    if problem:
        raise Invalid({"reason": problem})
    with engine.db.transaction() as conn:
        now = engine.now(conn)
        before = restriction(conn, case_id)
        if before is None:
            raise NotFoundError(f"case {case_id} is not restricted", case=case_id)
        conn.execute(delete(restricted_cases).where(restricted_cases.c.case_id == case_id))
        history.append(conn, history.case_chain(case_id), case_id, now, [Event(
            "case.unrestricted", {"previously": sorted(before), "reason": reason}, actor=user.username)],
            lock=engine.db.is_postgres)
    return get_restriction(engine, user, case_id)


# ---------------------------------------------------------------------- JSON API
Admin = Annotated[User, Depends(require_roles(ADMIN))]
Restricter = Annotated[User, Depends(require_roles(*RESTRICT_ROLES))]


class NewUser(BaseModel):
    username: str = Field(max_length=64)
    display_name: str = Field(max_length=255)
    password: str = Field(max_length=MAX_PASSWORD)
    roles: list[str] = Field(max_length=len(ROLES))
    teams: list[str] = Field(default_factory=list, max_length=len(TEAMS))


class UserChange(BaseModel):
    display_name: str | None = Field(default=None, max_length=255)
    roles: list[str] | None = Field(default=None, max_length=len(ROLES))
    teams: list[str] | None = Field(default=None, max_length=len(TEAMS))
    active: bool | None = None


class NewPassword(BaseModel):
    password: str = Field(max_length=MAX_PASSWORD)


class Restriction(BaseModel):
    usernames: list[str] = Field(max_length=50)
    reason: str = Field(max_length=500)
    hand_to: str | None = Field(default=None, max_length=64)


class Lift(BaseModel):
    reason: str = Field(max_length=500)


@router.get("/api/admin/users")
def api_users(request: Request, _admin: Admin) -> dict[str, Any]:
    return {"users": list_users(request.app.state.engine), "roles": list(ROLES), "teams": list(TEAMS)}


WAITS = {202: {"description": "Waits for a second administrator to approve it (`pending_request`)"}}


@router.post("/api/admin/users", status_code=201, responses=WAITS)
def api_create_user(body: NewUser, request: Request, response: Response, admin: Admin) -> dict[str, Any]:
    """201: the account can be used now. 202 with `pending_request`: it holds the administrator role or a role that
    opens case records, so it is kept deactivated, with no role, until a second administrator approves it."""
    out = create(request.app.state.engine, admin, body.username, body.display_name, body.password, body.roles,
                 body.teams)
    if out["waits"]:
        response.status_code = 202
    return out


@router.get("/api/admin/users/{username}")
def api_user(username: str, request: Request, _admin: Admin) -> dict[str, Any]:
    return get_user(request.app.state.engine, username)


@router.patch("/api/admin/users/{username}", responses=WAITS)
def api_change_user(username: str, body: UserChange, request: Request, response: Response,
                    admin: Admin) -> dict[str, Any]:
    """202 with `pending_request` when the change gives the account the administrator role or case access (a role
    or team that opens case records): a second administrator approves it. Reactivating an account ends the
    sessions it had."""
    out = change(request.app.state.engine, admin, username, display_name=body.display_name, roles=body.roles,
                 teams=body.teams, active=body.active)
    if out["waits"]:
        response.status_code = 202
    return out


class Decision(BaseModel):
    reason: str = Field(default="", max_length=500)


@router.get("/api/admin/role-requests")
def api_role_requests(request: Request, _admin: Admin) -> dict[str, Any]:
    return {"requests": list_requests(request.app.state.engine)}


@router.post("/api/admin/role-requests/{request_id}/approve")
def api_approve(request_id: Id, request: Request, admin: Admin, body: Decision | None = None) -> dict[str, Any]:
    return decide(request.app.state.engine, admin, request_id, True, body.reason if body else "")


@router.post("/api/admin/role-requests/{request_id}/refuse")
def api_refuse(request_id: Id, request: Request, admin: Admin, body: Decision | None = None) -> dict[str, Any]:
    return decide(request.app.state.engine, admin, request_id, False, body.reason if body else "")


@router.post("/api/admin/users/{username}/unlock")
def api_unlock(username: str, request: Request, admin: Admin) -> dict[str, Any]:
    return unlock(request.app.state.engine, admin, username)


@router.put("/api/admin/users/{username}/password", responses=WAITS)
def api_password(username: str, body: NewPassword, request: Request, response: Response,
                 admin: Admin) -> dict[str, Any]:
    """200: set, their sessions ended. 202 with `pending_request`: someone else's account holding the
    administrator role or a role that opens case records; set when a second administrator approves it."""
    out = set_password(request.app.state.engine, admin, username, body.password)
    if out["waits"]:
        response.status_code = 202
    return out


@router.get("/api/cases/{case_id}/restriction")
def api_get_restriction(case_id: Id, request: Request, user: Restricter) -> dict[str, Any]:
    return get_restriction(request.app.state.engine, user, case_id)


@router.put("/api/cases/{case_id}/restriction")
def api_restrict(case_id: Id, body: Restriction, request: Request, user: Restricter) -> dict[str, Any]:
    return restrict(request.app.state.engine, user, case_id, body.usernames, body.reason, body.hand_to)


@router.delete("/api/cases/{case_id}/restriction")
def api_unrestrict(case_id: Id, body: Lift, request: Request, user: Restricter) -> dict[str, Any]:
    return unrestrict(request.app.state.engine, user, case_id, body.reason)


# ---------------------------------------------------------------------- pages
FLASH = "carepath_admin_flash"


def _labels(names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(n, n.replace("_", " ").capitalize()) for n in names]


def _with_flash(request: Request, resp: Response, text: str, path: str) -> Response:
    from urllib.parse import quote

    resp.set_cookie(FLASH, quote(text[:500]), httponly=True, samesite="strict", path=path, max_age=300,
                    secure=page_kit.use_secure_cookie(request, request.app.state.auth))
    return resp


def _take_flash(request: Request) -> str:
    from urllib.parse import unquote

    return unquote(request.cookies.get(FLASH, ""))


def _render_flash(request: Request, name: str, ctx: dict[str, Any], path: str, status: int = 200) -> Response:
    flash = _take_flash(request)
    resp = page_kit.render(request, name, {**ctx, "flash": flash}, status)
    if flash:
        resp.delete_cookie(FLASH, path=path)
    return resp


async def _posted(request: Request, *roles: str) -> tuple[User, dict[str, list[str]]]:
    form = await page_kit.posted_form(request)
    user = page_kit.page_user(request, *roles)
    page_kit.check_csrf(user, form)
    return user, form


@router.get("/admin/users", response_class=HTMLResponse, include_in_schema=False)
def users_page(request: Request) -> Response:
    user = None
    try:
        user = page_kit.page_user(request, ADMIN)
        rows = list_users(request.app.state.engine)
        requests = list_requests(request.app.state.engine, decided=0)
        with request.app.state.engine.db.engine.connect() as conn:  # why this administrator may not decide one
            requests = [{**q, "blocked": may_decide(conn, user, q["requested_by"], q["username"])} for q in requests]
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return page_kit.guard(request, user, exc)
    return _render_flash(request, "admin_users.html", {"user": user, "rows": rows, "requests": requests}, "/admin")


@router.post("/admin/role-requests/{request_id}", response_class=HTMLResponse, include_in_schema=False)
async def role_request_action(request: Request, request_id: Id) -> Response:
    """Another administrator approves or refuses a role change waiting on the users page."""
    user = None
    try:
        user, form = await _posted(request, ADMIN)
        action = page_kit.one(form, "action")
        if action not in ("approve", "refuse"):
            raise ApiError(400, "invalid", "Unknown action; nothing was changed.")
        done = await run_in_threadpool(decide, request.app.state.engine, user, request_id, action == "approve",
                                       page_kit.one(form, "reason")[:500])
    except Exception as exc:  # noqa: BLE001
        return page_kit.guard(request, user, exc, not_found="There is no such role change request.")
    what = {"roles": "Role change", "account": "New account", "password": "New password",
            "mfa_reset": "Two-step verification reset"}[done["kind"]]
    text = f"{what} for {done['username']} {done['status']}"
    return _with_flash(request, page_kit.redirect("/admin/users"), text, "/admin")


def _new_user_form(request: Request, user: User, values: dict[str, Any], by_field: dict[str, str] | None = None,
                   status: int = 200) -> Response:
    anchors = {"roles": "roles-0", "teams": "teams-0"}
    return page_kit.render(request, "admin_user_new.html", {
        "user": user, "values": values, "field_errors": by_field or {},
        "errors": page_kit.error_summary(by_field or {}, anchors),
        "role_options": _labels(ROLES), "team_options": _labels(TEAMS)}, status)


@router.get("/admin/users/new", response_class=HTMLResponse, include_in_schema=False)
def new_user_page(request: Request) -> Response:
    user = None
    try:
        user = page_kit.page_user(request, ADMIN)
    except Exception as exc:  # noqa: BLE001
        return page_kit.guard(request, user, exc)
    return _new_user_form(request, user, {"roles": [], "teams": []})


@router.post("/admin/users/new", response_class=HTMLResponse, include_in_schema=False)
async def new_user(request: Request) -> Response:
    user = None
    try:
        user, form = await _posted(request, ADMIN)
        values = {"username": page_kit.one(form, "username")[:64],
                  "display_name": page_kit.one(form, "display_name")[:255],
                  "roles": form.get("roles", [])[:20], "teams": form.get("teams", [])[:20]}
        try:
            created = await run_in_threadpool(create, request.app.state.engine, user, values["username"],
                                              values["display_name"], page_kit.one(form, "password")[:MAX_PASSWORD + 1],
                                              values["roles"], values["teams"])
        except Invalid as exc:
            return _new_user_form(request, user, values, exc.by_field, 400)
    except Exception as exc:  # noqa: BLE001
        return page_kit.guard(request, user, exc)
    text = f"User {created['username']} added"
    if created["waits"]:
        text += (": they hold a role that administers accounts or opens case records, so they can sign in once "
                 "another administrator approves the new account on the users page")
    return _with_flash(request, page_kit.redirect("/admin/users"), text, "/admin")


def _user_page(request: Request, user: User, target: dict[str, Any], *, values: dict[str, Any] | None = None,
               by_field: dict[str, str] | None = None, status: int = 200) -> Response:
    anchors = {"roles": "roles-0", "teams": "teams-0", "active": "active-button"}
    values = values or {"display_name": target["display_name"], "roles": target["roles"], "teams": target["teams"]}
    return _render_flash(request, "admin_user.html", {
        "user": user, "target": target, "values": values, "field_errors": by_field or {},
        "errors": page_kit.error_summary(by_field or {}, anchors),
        "role_options": _labels(ROLES), "team_options": _labels(TEAMS),
        "is_self": target["username"] == user.username, "privileged": bool(set(target["roles"]) & PRIVILEGED_ROLES),
        "linked": linked_username(request.app.state.engine, target["username"])}, "/admin", status)


@router.get("/admin/users/{username}", response_class=HTMLResponse, include_in_schema=False)
def user_page(request: Request, username: str) -> Response:
    user = None
    try:
        user = page_kit.page_user(request, ADMIN)
        target = get_user(request.app.state.engine, username)
    except Exception as exc:  # noqa: BLE001
        return page_kit.guard(request, user, exc, not_found="There is no user with that username.")
    return _user_page(request, user, target)


@router.post("/admin/users/{username}", response_class=HTMLResponse, include_in_schema=False)
async def user_action(request: Request, username: str) -> Response:
    """One form per action: `action` is details, deactivate, reactivate, unlock, reset_mfa or password."""
    user = None
    engine = request.app.state.engine
    try:
        user, form = await _posted(request, ADMIN)
        target = get_user(engine, username)
        action = page_kit.one(form, "action")
        values = None
        try:
            if action == "details":
                values = {"display_name": page_kit.one(form, "display_name")[:255], "roles": form.get("roles", [])[:20],
                          "teams": form.get("teams", [])[:20]}
                out = await run_in_threadpool(change, engine, user, username, display_name=values["display_name"],
                                              roles=values["roles"], teams=values["teams"])
                done = "Details saved"
                if out["waits"]:
                    adds = ", ".join(a.replace("team:", "the team ").replace("_", " ")
                                     for a in out["pending_request"]["adds"])
                    whose = "Your change adds" if username == user.username else "The change adds"
                    done = (f"{whose} access to case records or administration ({adds}): it waits for another "
                            "administrator to approve it on the users page. Details saved")
            elif action in ("deactivate", "reactivate"):
                await run_in_threadpool(change, engine, user, username, active=action == "reactivate")
                done = "Account deactivated: their sessions have ended" if action == "deactivate" else \
                    "Account reactivated: they sign in again (no session from before comes back)"
            elif action == "unlock":
                await run_in_threadpool(unlock, engine, user, username)
                done = "Account unlocked"
            elif action == "reset_mfa":
                from . import mfa

                out = await run_in_threadpool(mfa.reset, engine, user, username)
                done = "Two-step verification reset: they set it up again when they next sign in"
                if out["waits"]:
                    done = (f"The reset of two-step verification for {username} waits for another administrator to "
                            "approve it on the users page: they hold a role that administers accounts or opens case "
                            "records.")
            elif action == "password":
                out = await run_in_threadpool(set_password, engine, user, username,
                                              page_kit.one(form, "password")[:MAX_PASSWORD + 1])
                done = "New password set: their sessions have ended"
                if out["waits"]:
                    done = (f"The new password for {username} waits for another administrator to approve it on the "
                            "users page: they hold a role that administers accounts or opens case records.")
            else:
                raise ApiError(400, "invalid", "Unknown action; nothing was changed.")
        except Invalid as exc:
            return _user_page(request, user, target, values=values, by_field=exc.by_field, status=400)
    except Exception as exc:  # noqa: BLE001
        return page_kit.guard(request, user, exc, not_found="There is no user with that username.")
    text = done if done.endswith(".") else f"{done} for {username}"
    return _with_flash(request, page_kit.redirect(f"/admin/users/{username}"), text, "/admin")


def _restriction_page(request: Request, user: User, *, reference: str = "", info: dict[str, Any] | None = None,
                      values: dict[str, str] | None = None, by_field: dict[str, str] | None = None,
                      status: int = 200) -> Response:
    anchors = {"usernames": "usernames", "reason": "reason", "reference": "reference", "reason-lift": "reason-lift",
               "hand_to": "hand_to"}
    if values is None and info is not None:
        values = {"usernames": "\n".join(info["allowed"]), "reason": ""}
    return _render_flash(request, "admin_restriction.html", {
        "user": user, "reference": reference, "info": info, "values": values or {}, "field_errors": by_field or {},
        "errors": page_kit.error_summary(by_field or {}, anchors)}, "/admin", status)


def _case_by_reference(engine: Any, reference: str) -> int | None:
    with engine.db.engine.connect() as conn:
        row = conn.execute(select(cases.c.id).where(cases.c.reference == reference.strip().upper())).first()
    return None if row is None else row.id


@router.get("/admin/restrictions", response_class=HTMLResponse, include_in_schema=False)
def restrictions_page(request: Request, reference: str | None = None) -> Response:
    user = None
    engine = request.app.state.engine
    try:
        user = page_kit.page_user(request, *RESTRICT_ROLES)
        if reference is None:
            return _restriction_page(request, user)
        reference = reference.strip()[:64]
        case_id = _case_by_reference(engine, reference) if reference else None
        if case_id is None:
            msg = "Enter a case reference, for example CASE-000123" if not reference else \
                f"There is no case {reference}"
            return _restriction_page(request, user, reference=reference, by_field={"reference": msg}, status=400)
        info = get_restriction(engine, user, case_id)
    except Exception as exc:  # noqa: BLE001
        return page_kit.guard(request, user, exc)
    return _restriction_page(request, user, reference=info["reference"], info=info)


@router.post("/admin/restrictions/{case_id}", response_class=HTMLResponse, include_in_schema=False)
async def restriction_action(request: Request, case_id: Id) -> Response:
    user = None
    engine = request.app.state.engine
    try:
        user, form = await _posted(request, *RESTRICT_ROLES)
        info = get_restriction(engine, user, case_id)
        values = {"usernames": page_kit.one(form, "usernames")[:3000], "reason": page_kit.one(form, "reason")[:600],
                  "hand_to": page_kit.one(form, "hand_to")[:64]}
        lift = page_kit.one(form, "action") == "lift"
        try:
            if lift:
                values = None
                await run_in_threadpool(unrestrict, engine, user, case_id, page_kit.one(form, "reason-lift")[:600])
                done = f"Restriction lifted on {info['reference']}"
            else:
                names = [n for n in values["usernames"].replace(",", "\n").split("\n") if n.strip()]
                await run_in_threadpool(restrict, engine, user, case_id, names, values["reason"],
                                        values["hand_to"] or None)
                done = f"{info['reference']} is restricted to the people named"
        except Invalid as exc:
            by_field = {("reason-lift" if lift and k == "reason" else k): m for k, m in exc.by_field.items()}
            return _restriction_page(request, user, reference=info["reference"], info=info, values=values,
                                     by_field=by_field, status=400)
    except Exception as exc:  # noqa: BLE001
        return page_kit.guard(request, user, exc, not_found="There is no such case, or it is not restricted.")
    try:
        get_restriction(engine, user, case_id)
        target = f"/admin/restrictions?reference={info['reference']}"
    except ApiError:  # a team manager who left themselves off the list can no longer see it
        target = "/admin/restrictions"
    return _with_flash(request, page_kit.redirect(target), done, "/admin")
