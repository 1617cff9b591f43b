"""Users, roles, teams, sign-in sessions, CSRF and lock-out (see docs/security.md).

The tables (users, sessions, case access log, restricted cases) are in engine/schema.py and
created by the migrations (`carepath init`). Every "now" comes from `engine.now(conn)` — the
one injected clock — so lock-out and session expiry follow a simulated clock too.

* Passwords: argon2id (argon2-cffi defaults), rehashed on sign-in when the parameters change.
* Sessions: a random token in the `carepath_session` cookie (HttpOnly, SameSite=Strict,
  Secure over https); only its SHA-256 is stored, so a copy of the database opens no session.
* CSRF: each session has its own random token; every POST/PUT/PATCH/DELETE made with a
  session must send it in `X-CSRF-Token` (checked in `current_user`, so no state-changing
  endpoint can forget it).
* Lock-out: `max_failures` wrong passwords in a row lock the account for `lockout`; the
  answer to a failed sign-in never says whether the user exists or is locked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import bindparam, delete, insert, select, update

from engine.clock import as_utc
from engine.schema import case_access_log, restricted_cases, sessions, users  # noqa: F401 (re-exported)
from handlers import teams

from .errors import ApiError, forbidden, unauthenticated
from .passwords import password_problem

ROLES = ("front_door_advisor", "social_worker", "occupational_therapist", "reablement_coordinator",
         "team_manager", "finance_officer", "process_owner", "auditor", "administrator",
         "performance")  # performance: reads the statutory returns and the measures (docs/measures.md)
TEAMS = teams.TEAMS  # the council's teams (handlers/teams.py): what diagrams' user tasks are checked against
# roles that do casework: they see and act on their teams' tasks
WORKER_ROLES = frozenset({"front_door_advisor", "social_worker", "occupational_therapist",
                          "reablement_coordinator", "team_manager", "finance_officer"})
# roles that may open any (unrestricted) case record and read its history
OVERSIGHT_ROLES = frozenset({"team_manager", "auditor"})

COOKIE = "carepath_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
SIGN_IN_FAILED = "the username or password is wrong, or the account is locked for a while after repeated failures"

# ---------------------------------------------------------------------- users
@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    roles: frozenset[str]
    teams: frozenset[str]
    csrf_token: str = field(default="", repr=False, compare=False)

    def has(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    @property
    def is_worker(self) -> bool:
        return bool(self.roles & WORKER_ROLES)

    def public(self) -> dict[str, Any]:
        return {"username": self.username, "display_name": self.display_name,
                "roles": sorted(self.roles), "teams": sorted(self.teams)}


_hasher = PasswordHasher()
# verified against when the user does not exist, so both paths cost the same
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(engine: Any, username: str, password: str, *, display_name: str | None = None,
                roles: list[str] | tuple[str, ...] = (), teams: list[str] | tuple[str, ...] = ()) -> int:
    """Add a user (argon2 hash of the password); unknown roles or teams are refused."""
    if not USERNAME_RE.match(username):
        raise ValueError(f"username {username!r} must be 2-64 of a-z, 0-9, '.', '_' or '-'")
    bad = [r for r in roles if r not in ROLES] + [t for t in teams if t not in TEAMS]
    if bad:
        raise ValueError(f"unknown role(s) or team(s): {', '.join(bad)}")
    problem = password_problem(password, username)
    if problem:
        raise ValueError(problem[:1].lower() + problem[1:])
    with engine.db.transaction() as conn:
        now = engine.now(conn)
        return conn.execute(insert(users).values(
            username=username, display_name=display_name or username, password_hash=_hasher.hash(password),
            roles=sorted(set(roles)), teams=sorted(set(teams)), failed_attempts=0, locked_until=None,
            active=True, created_at=now).returning(users.c.id)).scalar_one()


def _user(row: Any, csrf: str = "") -> User:
    return User(row.id, row.username, row.display_name, frozenset(_json(row.roles)), frozenset(_json(row.teams)),
                csrf)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def json_set(value: Any) -> set[str]:
    """A JSON list column (roles, teams, allowed names) as a set, whatever the driver returned."""
    return set(_json(value) or [])


@dataclass
class AuthSettings:
    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)
    session_lifetime: timedelta = timedelta(hours=8)
    secure_cookie: bool | None = None  # None: Secure when the request came over https


# the session check's one query, built once (every request runs it: building it each time cost more than
# running it on SQLite, docs/performance.md "HTTP against the engine")
_SESSION_USER = (select(users, sessions.c.csrf_token, sessions.c.expires_at)
                 .join(sessions, sessions.c.user_id == users.c.id)
                 .where(sessions.c.token_hash == bindparam("token_hash")))


class AuthStore:
    def __init__(self, engine: Any, settings: AuthSettings | None = None) -> None:
        self.engine = engine
        self.settings = settings or AuthSettings()

    def sign_in(self, username: str, password: str) -> tuple[User, str]:
        """Check the password; returns the user and a new session token, or raises 401."""
        s = self.settings
        with self.engine.db.transaction() as conn:
            now = self.engine.now(conn)
            row = conn.execute(select(users).where(users.c.username == username)).first()
            if row is None:
                _verify(_DUMMY_HASH, password)
                raise ApiError(401, "sign_in_failed", SIGN_IN_FAILED)
            locked = row.locked_until is not None and as_utc(row.locked_until) > now
            ok = _verify(row.password_hash, password)  # always verify: same cost whether locked or not
            if locked or not row.active:  # a deactivated account gets the same answer as a wrong password
                raise ApiError(401, "sign_in_failed", SIGN_IN_FAILED)
            if not ok:
                failures = conn.execute(update(users).where(users.c.id == row.id)
                                        .values(failed_attempts=users.c.failed_attempts + 1)
                                        .returning(users.c.failed_attempts)).scalar_one()
                if failures >= s.max_failures:
                    conn.execute(update(users).where(users.c.id == row.id)
                                 .values(failed_attempts=0, locked_until=now + s.lockout))
        if not ok:
            raise ApiError(401, "sign_in_failed", SIGN_IN_FAILED)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.engine.db.transaction() as conn:
            now = self.engine.now(conn)
            values = {"failed_attempts": 0, "locked_until": None}
            if _hasher.check_needs_rehash(row.password_hash):
                values["password_hash"] = _hasher.hash(password)
            conn.execute(update(users).where(users.c.id == row.id).values(**values))
            conn.execute(insert(sessions).values(token_hash=_hash_token(token), user_id=row.id, created_at=now,
                                                 expires_at=now + s.session_lifetime, csrf_token=csrf))
        return _user(row, csrf), token

    def session_user(self, token: str | None) -> User | None:
        if not token:
            return None
        with self.engine.db.engine.connect() as conn:
            now = self.engine.now(conn)
            row = conn.execute(_SESSION_USER, {"token_hash": _hash_token(token)}).first()
        if row is None or as_utc(row.expires_at) <= now or not row.active:
            return None  # a deactivated account's sessions end at once
        return _user(row, row.csrf_token)

    def sign_out(self, token: str) -> None:
        with self.engine.db.transaction() as conn:
            conn.execute(delete(sessions).where(sessions.c.token_hash == _hash_token(token)))
            now = self.engine.now(conn)
            conn.execute(delete(sessions).where(sessions.c.expires_at <= now))  # tidy expired ones


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# ---------------------------------------------------------------------- request dependencies
# The dependencies that only read the request or check a role are `async def`: FastAPI runs a plain `def`
# dependency in a worker thread, one hop per dependency per request (issue 14: half the server's time was
# such plumbing). `current_user` reads the database, so it stays a `def` (a worker thread).
async def get_engine(request: Request) -> Any:
    return request.app.state.engine


async def get_store(request: Request) -> AuthStore:
    return request.app.state.auth


def current_user(request: Request) -> User:
    """The signed-in user; 401 without a valid session, 403 when a state-changing request lacks CSRF.

    The store is read from the app, not through `get_store`: one dependency less to solve on every request."""
    store: AuthStore = request.app.state.auth
    user = store.session_user(request.cookies.get(COOKIE))
    if user is None:
        raise unauthenticated()
    if request.method in UNSAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent.encode(), user.csrf_token.encode()):
            raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header; nothing was changed")
    return user


def require_roles(*roles: str):  # type: ignore[no-untyped-def]
    async def dep(user: Annotated[User, Depends(current_user)]) -> User:
        if not user.has(*roles):
            raise forbidden(f"this needs one of the roles: {', '.join(roles)}")
        return user
    return dep


# ---------------------------------------------------------------------- routes
router = APIRouter(prefix="/api")


class SignIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


@router.post("/session")
def sign_in(body: SignIn, request: Request, response: Response,
            store: Annotated[AuthStore, Depends(get_store)]) -> dict[str, Any]:
    old = request.cookies.get(COOKIE)
    user, token = store.sign_in(body.username.strip().lower(), body.password)
    if old:
        store.sign_out(old)  # a new session on every sign-in (no fixation)
    secure = store.settings.secure_cookie
    if secure is None:
        secure = request.url.scheme == "https"
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/")
    return {"user": user.public(), "csrf_token": user.csrf_token}


@router.delete("/session")
def sign_out(request: Request, response: Response, _user: Annotated[User, Depends(current_user)],
             store: Annotated[AuthStore, Depends(get_store)]) -> dict[str, Any]:
    store.sign_out(request.cookies.get(COOKIE, ""))
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return {"signed_out": True}


@router.get("/me")
def me(user: Annotated[User, Depends(current_user)]) -> dict[str, Any]:
    return {"user": user.public(), "csrf_token": user.csrf_token}
