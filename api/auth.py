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
* Lock-out by (account, client address) with doubling back-off, plus a per-address limit across accounts
  (password spraying): an attacker at one address holds back only that address, never the account's owner
  elsewhere. A failed sign-in's answer never says whether the user exists; a waiting one says when to retry.
* argon2 runs in a bounded pool (`VerifyPool`): beyond it a sign-in is answered 503 "busy", so a burst of
  sign-ins cannot take every core and worker thread.
* A second factor (TOTP, api/mfa.py): with it on, the right password gives a short-lived challenge
  (`CodeNeeded`), and the session is created only by `complete_mfa` with the right code.
* Sessions end after `session_lifetime` (8 hours) and when unused for longer than `idle_timeout` (30 minutes);
  the last use is written at most once a minute (`touch_every`), not on every request.
* One's own password (`change_password`, api/own_password.py): the current one verified in the same pool and
  counted like a failed sign-in when wrong; the other sessions end and this one gets a new token. A password an
  administrator chose (`users.password_change_due`) must be changed first: until then the account holds no role,
  the pages lead only to /account/password and the API answers 403 `password_change_required`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import bindparam, delete, insert, select, update
from starlette.concurrency import run_in_threadpool

from engine.clock import as_utc
from engine.driver_sql import Prepared
from engine.schema import (  # noqa: F401 (re-exported)
    case_access_log,
    mfa_challenges,
    restricted_cases,
    sessions,
    settings,
    sign_in_throttle,
    users,
)
from handlers import teams

from .errors import ApiError, _error_body, forbidden, unauthenticated
from .passwords import password_problem

ROLES = ("front_door_advisor", "social_worker", "occupational_therapist", "reablement_coordinator",
         "team_manager", "finance_officer", "process_owner", "auditor", "administrator",
         "performance",  # performance: reads the statutory returns and the measures (docs/measures.md)
         "data_protection")  # data protection: subject access exports (api/subject_access.py, docs/security.md)
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
# the names the history uses for what no person did (engine/history.py "system": deployments, clock moves, cases
# made by code; the command line's default "cli"; the identity provider's "oidc"; the demo's, simulations' and
# trials' own): an account of one of these names would have its actions read as automatic ("System" on every
# page) and be credited with the automatic ones, so no account takes them
RESERVED_USERNAMES = frozenset({"system", "cli", "oidc", "demo", "simulation", "trial", "timer", "timers",
                                "engine", "carepath", "anonymous", "unknown"})
LOCAL_ACCOUNTS_OFF = "sign-in with a username and password is switched off: sign in with the council's account"
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
    mfa_setup_due: bool = field(default=False, compare=False)  # must set up a second factor: holds no role till then
    # an administrator chose the password: must choose their own first, holds no role till then
    password_change_due: bool = field(default=False, compare=False)

    def has(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    @property
    def is_worker(self) -> bool:
        return bool(self.roles & WORKER_ROLES)

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {"username": self.username, "display_name": self.display_name,
                               "roles": sorted(self.roles), "teams": sorted(self.teams)}
        if self.password_change_due:
            out["password_change_due"] = True
        return out


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
    if username in RESERVED_USERNAMES:
        raise ValueError(f"username {username!r} is kept for what carepath records as done by no person")
    bad = [r for r in roles if r not in ROLES] + [t for t in teams if t not in TEAMS]
    if bad:
        raise ValueError(f"unknown role(s) or team(s): {', '.join(bad)}")
    problem = password_problem(password, username, display_name or "")
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


def _default_slots() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass
class AuthSettings:
    """Sign-in rules (docs/security.md, "Passwords, sign-in and lock-out"). Every time is the engine's clock."""
    # failed sign-ins per (account, client address): after `max_failures` the next attempt from that address
    # waits `backoff_base`, doubling with each further failure, at most `backoff_cap`; a success, an
    # administrator's unlock, or `forget_after` without a failure clears the count
    max_failures: int = 5
    backoff_base: timedelta = timedelta(minutes=1)
    backoff_cap: timedelta = timedelta(hours=1)
    forget_after: timedelta = timedelta(hours=24)
    # failed sign-ins per address, whatever the account (password spraying): the same back-off after
    # `address_max_failures`; only `address_forget_after` without a failure clears it (not a success: an
    # attacker's own account must not reset it)
    address_max_failures: int = 30
    address_forget_after: timedelta = timedelta(hours=1)
    session_lifetime: timedelta = timedelta(hours=8)
    # a session not used for longer than this ends (None: no idle limit); `carepath serve` reads
    # CAREPATH_IDLE_MINUTES. Its last use is written at most every `touch_every`, so the idle time counted runs
    # from up to a minute before the true last use
    idle_timeout: timedelta | None = timedelta(minutes=30)
    touch_every: timedelta = timedelta(minutes=1)
    secure_cookie: bool | None = None  # None: Secure when the request came over https
    # how long a break-glass use lasts (api/break_glass.py); None: CAREPATH_BREAK_GLASS_MINUTES, else 4 hours
    break_glass_for: timedelta | None = None
    # False: passwords are refused and everyone signs in through the council's identity provider (api/oidc.py)
    local_accounts: bool = True
    # argon2 verifications at once (each takes ~64 MiB and a core for ~50 ms); more wait up to `verify_wait`
    # in a queue of at most `verify_queue`, beyond which a sign-in is answered 503 "busy" at once
    verify_slots: int = field(default_factory=_default_slots)
    verify_queue: int | None = None  # None: 2 x verify_slots
    verify_wait: float = 2.0  # seconds (real time: it bounds real work, not a business rule)
    # second factor (api/mfa.py): roles that must use it (empty: nobody must; `carepath serve` reads
    # CAREPATH_MFA_REQUIRED_ROLES, default "administrator"), the key that encrypts TOTP secrets at rest
    mfa_required_roles: frozenset[str] = frozenset()
    mfa_key: str | None = None
    mfa_challenge_lifetime: timedelta = timedelta(minutes=5)
    mfa_max_code_failures: int = 5


class VerifyPool:
    """At most `slots` argon2 verifications run at once; at most `queue` more wait, each for `wait` seconds.

    A burst of sign-ins (argon2id costs 64 MiB and ~50 ms of a core each) would otherwise take every core and
    the server's worker threads, and every page would slow (issue 15: 16 concurrent sign-ins made every page
    take 1.7 s). A sign-in that cannot get a slot is answered 503 "busy, try again" and verifies nothing."""

    def __init__(self, slots: int, queue: int, wait: float) -> None:
        self.slots, self.queue, self.wait = slots, queue, wait
        self._sem = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._admitted = 0  # running + waiting

    def saturated(self) -> bool:
        """Every slot and queue place taken: the routes answer busy at once, before taking a worker thread."""
        return self._admitted >= self.slots + self.queue

    def verify(self, password_hash: str, password: str) -> bool:
        with self._lock:
            if self._admitted >= self.slots + self.queue:
                raise busy()
            self._admitted += 1
        try:
            if not self._sem.acquire(timeout=self.wait):
                raise busy()
            try:
                return _verify(password_hash, password)
            finally:
                self._sem.release()
        finally:
            with self._lock:
                self._admitted -= 1


def busy() -> ApiError:
    return ApiError(503, "busy", "sign-in is busy just now: nothing was checked, try again in a few seconds",
                    retry_after=5)


class CodeNeeded(Exception):
    """The password was right and the account uses a second factor: `challenge` is the token (kept in a
    short-lived cookie) that `AuthStore.complete_mfa` takes with the code. No session exists yet."""

    def __init__(self, challenge: str) -> None:
        super().__init__("a code from the authenticator app is needed")
        self.challenge = challenge


MFA_CODE_FAILED = ("the code is wrong, has been used already or has expired: enter the current code from your "
                   "authenticator app, or one of your recovery codes")
MFA_EXPIRED = "the sign-in has expired or was not started: sign in again with your username and password"


# the session check's one query, built once (every request runs it: building it each time cost more than
# running it on SQLite, docs/performance.md "HTTP against the engine"): the user's columns `AuthStore._user`
# reads (not the password hash or second-factor secret), the session's, and a simulated clock's setting, so that
# the check needs no statement of its own for "now" (`Engine.now_if_known`) whatever the clock
_SESSION_COLUMNS = (users.c.id, users.c.username, users.c.display_name, users.c.roles, users.c.teams, users.c.active,
                    users.c.mfa_enabled, users.c.password_change_due, sessions.c.csrf_token, sessions.c.expires_at,
                    sessions.c.last_used_at, sessions.c.created_at.label("session_started_at"))
_SESSION_USER = Prepared(
    select(*_SESSION_COLUMNS,
           select(settings.c.value).where(settings.c.key == "clock_now").scalar_subquery().label("clock_now"))
    .join_from(users, sessions, sessions.c.user_id == users.c.id)
    .where(sessions.c.token_hash == bindparam("token_hash")))


class SessionReader:
    """The session check's read on the event loop, without a worker-thread hop (docs/performance.md, "A cheaper
    HTTP layer, continued"), for a file SQLite database: on a connection of the calling thread's own (taken
    from the pool once and detached, so it has the pool's settings), in autocommit — the statement is its own
    read transaction and sees every committed sign-out, deactivation and role change at once. It never waits:
    its busy timeout is 0 and any driver error answers None, and the check then runs in a worker thread as on
    PostgreSQL (`AuthStore.session_user`). None for any other database (in-memory, PostgreSQL)."""

    def __init__(self, engine: Any) -> None:
        db = engine.db
        url = db.engine.url
        self.dialect = db.engine.dialect
        self.usable = db.dialect == "sqlite" and url.database not in (None, "", ":memory:") \
            and "mode=memory" not in str(url)
        self._local = threading.local()
        self._engine = db.engine

    def _driver(self) -> Any:
        driver = getattr(self._local, "driver", None)
        if driver is None:
            fairy = self._engine.raw_connection()
            driver = fairy.driver_connection
            fairy.detach()  # the thread's own from now on: the pool neither counts nor resets it
            driver.execute("PRAGMA busy_timeout=0")  # on the event loop: never wait for a lock
            self._local.fairy, self._local.driver = fairy, driver
        return driver

    def row(self, token_hash: str) -> tuple[bool, Any]:
        """(read, row): read False when it could not be read without waiting."""
        if not self.usable:
            return False, None
        import sqlite3

        try:
            return True, _SESSION_USER.first_on_driver(self.dialect, self._driver(), {"token_hash": token_hash})
        except sqlite3.Error:
            self._local.__dict__.clear()  # a fresh connection next time
            return False, None


class PgSessionReader:
    """PostgreSQL: the session check's read on the event loop, without a worker-thread hop, in one round trip
    (docs/performance.md, "A cheaper HTTP layer, continued"). Through the pool it was a hop and three round trips —
    the pool's pre-ping, the SELECT in a transaction, the ROLLBACK on return — and about 0.4 ms of the server's CPU.
    Here it is one SELECT on a connection of its own, opened with psycopg's asynchronous API on the event loop and
    kept in autocommit: the statement is its own transaction and sees every committed sign-out, deactivation and
    role change. It has no pre-ping: a read that fails for any reason (PostgreSQL restarted, the connection cut)
    closes the connection and answers "not read", and that one check runs in a worker thread through the pool, whose
    pre-ping recovers from a restart; the next check opens a new connection (no sooner than a second after a
    failure). Never two reads at once on it: a check that finds it busy runs in a worker thread. It is opened on a
    loop's second check, so a loop that checks one session only (a test client's per-request loop) opens none, and it
    is closed with the engine's pool (`Engine.db.dispose()`). None of this for any other database."""

    RETRY_AFTER = 1.0  # seconds after a failed read or connect before a new connection is tried

    def __init__(self, engine: Any) -> None:
        db = engine.db
        self.usable = db.is_postgres
        self._conn: Any = None
        self._loop: Any = None
        self._uses = 0
        self._busy = False
        self._retry_at = 0.0
        if self.usable:
            from sqlalchemy import event

            self._dialect = db.engine.dialect
            self._url = db.engine.url
            event.listen(db.engine, "engine_disposed", lambda _engine: self.close())

    def close(self) -> None:
        """Close the connection (from any thread): its socket at once, the next read opens another."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            conn.pgconn.finish()

    async def row(self, token_hash: str) -> tuple[bool, Any]:
        """(read, row): read False when the read was not made here (busy, not connected, failed)."""
        import asyncio
        import time

        if not self.usable or self._busy:
            return False, None
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a connection belongs to the loop that opened it
            self.close()
            self._loop, self._uses = loop, 0
        self._uses += 1
        if self._uses < 2 or (self._conn is None and time.monotonic() < self._retry_at):
            return False, None
        self._busy = True
        try:
            if self._conn is None:
                self._conn = await self._connect()
            c = _SESSION_USER.compiled_for(self._dialect)
            cur = await self._conn.execute(c.sql, {**c.defaults, "token_hash": token_hash})
            raw = await cur.fetchone()
            return True, None if raw is None else c.row(raw)
        except Exception:
            self.close()
            self._retry_at = time.monotonic() + self.RETRY_AFTER
            return False, None
        except BaseException:  # cancelled mid-read: the connection's state is unknown
            self.close()
            raise
        finally:
            self._busy = False

    async def _connect(self) -> Any:
        import psycopg

        cargs, cparams = self._dialect.create_connect_args(self._url)  # as the pool connects (and its adapters)
        cparams.setdefault("connect_timeout", 5)
        return await psycopg.AsyncConnection.connect(*cargs, **cparams, autocommit=True)


def client_address(request: Request) -> str:
    """The address a request came from, as the ASGI server saw it. Behind a reverse proxy run uvicorn with
    `--proxy-headers --forwarded-allow-ips=<the proxy's address>` so that this is the client's address from
    X-Forwarded-For, trusted only from the proxy; the app never reads X-Forwarded-For itself (anyone can send it).
    """
    return (request.client.host if request.client else "unknown")[:64]


class AuthStore:
    def __init__(self, engine: Any, settings: AuthSettings | None = None) -> None:
        self.engine = engine
        self.settings = s = settings or AuthSettings()
        self.pool = VerifyPool(s.verify_slots, 2 * s.verify_slots if s.verify_queue is None else s.verify_queue,
                               s.verify_wait)
        self.reader = SessionReader(engine)
        self.pg_reader = PgSessionReader(engine)

    # ------------------------------------------------------------------ throttle
    def _keys(self, username: str, address: str) -> list[tuple[str, int, timedelta]]:
        s = self.settings
        return [(f"a:{username}|{address}", s.max_failures, s.forget_after),
                (f"ip:{address}", s.address_max_failures, s.address_forget_after)]

    def _check_throttle(self, conn: Any, now: Any, username: str, address: str) -> None:
        """429 while the back-off of this (account, address) or of this address runs; it says when to retry.
        The same for a known and an unknown username, so it tells nobody whether an account exists."""
        keys = self._keys(username, address)
        rows = conn.execute(select(sign_in_throttle).where(sign_in_throttle.c.key.in_([k for k, _, _ in keys])))
        until = max((as_utc(r.blocked_until) for r in rows if r.blocked_until is not None
                     and now < as_utc(r.blocked_until)), default=None)
        if until is not None:
            wait = until - now
            minutes = max(1, -(-int(wait.total_seconds()) // 60))
            raise ApiError(429, "too_many_attempts",
                           f"too many failed sign-ins from your address: nothing was checked; try again in "
                           f"{minutes} minute{'s' if minutes != 1 else ''} (after {until:%H:%M} UTC)",
                           retry_after=int(wait.total_seconds()) + 1)

    def _record_failure(self, conn: Any, now: Any, username: str, address: str) -> None:
        s = self.settings
        for key, threshold, forget in self._keys(username, address):
            row = conn.execute(select(sign_in_throttle).where(sign_in_throttle.c.key == key)).first()
            failures = 1 if row is None or now - as_utc(row.last_failure_at) >= forget else row.failures + 1
            blocked = None
            if failures >= threshold:
                delay = min(s.backoff_base * (2 ** min(failures - threshold, 30)), s.backoff_cap)
                blocked = now + delay
            values = {"failures": failures, "last_failure_at": now, "blocked_until": blocked}
            if row is None:
                conn.execute(insert(sign_in_throttle).values(key=key, **values))
            else:
                conn.execute(update(sign_in_throttle).where(sign_in_throttle.c.key == key).values(**values))
            if blocked is not None and key.startswith("a:"):  # shown to administrators as "locked" (from somewhere)
                conn.execute(update(users).where(users.c.username == username).values(locked_until=blocked))

    def _record_success(self, conn: Any, username: str, address: str) -> None:
        conn.execute(delete(sign_in_throttle).where(sign_in_throttle.c.key == f"a:{username}|{address}"))

    # ------------------------------------------------------------------ sign-in
    def sign_in(self, username: str, password: str, address: str = "local") -> tuple[User, str]:
        """Check the password; returns the user and a new session token, raises 401 (wrong, unknown, inactive:
        one answer), 429 (back-off running), 503 (busy), or `CodeNeeded` when the account uses a second factor.
        """
        if not self.settings.local_accounts:  # everyone signs in through the identity provider (api/oidc.py)
            raise ApiError(403, "local_accounts_off", LOCAL_ACCOUNTS_OFF)
        with self.engine.db.engine.connect() as conn:
            now = self.engine.now(conn)
            self._check_throttle(conn, now, username, address)  # before any argon2 work: a blocked try is cheap
            row = conn.execute(select(users).where(users.c.username == username)).first()
        # verify whether or not the user exists or is active: the same cost, the same answer
        ok = self.pool.verify(row.password_hash if row is not None else _DUMMY_HASH, password)
        if row is None or not ok or not row.active:
            with self.engine.db.transaction() as conn:
                self._record_failure(conn, self.engine.now(conn), username, address)
            raise ApiError(401, "sign_in_failed", SIGN_IN_FAILED)
        if row.mfa_enabled:
            challenge = secrets.token_urlsafe(32)
            with self.engine.db.transaction() as conn:
                now = self.engine.now(conn)
                conn.execute(delete(mfa_challenges).where(mfa_challenges.c.expires_at <= now))
                conn.execute(insert(mfa_challenges).values(
                    token_hash=_hash_token(challenge), user_id=row.id, created_at=now,
                    expires_at=now + self.settings.mfa_challenge_lifetime, failures=0, address=address))
            raise CodeNeeded(challenge)
        return self._start_session(row, password, address)

    def complete_mfa(self, challenge: str, code: str, address: str = "local") -> tuple[User, str]:
        """The second step: the code from the authenticator app (or a recovery code) for the challenge that
        `sign_in` gave. 401 `mfa_failed` for a wrong, replayed or expired code (counted like a wrong password;
        after `mfa_max_code_failures` the challenge ends), 401 `mfa_expired` without a live challenge."""
        from . import mfa

        failed = expired = False
        with self.engine.db.transaction() as conn:
            now = self.engine.now(conn)
            ch = conn.execute(select(mfa_challenges).where(
                mfa_challenges.c.token_hash == _hash_token(challenge or ""))).first()
            row = None if ch is None else conn.execute(select(users).where(users.c.id == ch.user_id)).first()
            if ch is None or as_utc(ch.expires_at) <= now or row is None or not row.active or not row.mfa_enabled:
                expired = True
            else:
                self._check_throttle(conn, now, row.username, address)
                if not mfa.accept_code(conn, self.settings, row, code, now):
                    failed = True
                    self._record_failure(conn, now, row.username, address)
                    if ch.failures + 1 >= self.settings.mfa_max_code_failures:
                        conn.execute(delete(mfa_challenges).where(mfa_challenges.c.token_hash == ch.token_hash))
                    else:
                        conn.execute(update(mfa_challenges).where(mfa_challenges.c.token_hash == ch.token_hash)
                                     .values(failures=ch.failures + 1))
                else:
                    conn.execute(delete(mfa_challenges).where(mfa_challenges.c.token_hash == ch.token_hash))
        if expired:
            raise ApiError(401, "mfa_expired", MFA_EXPIRED)
        if failed:
            raise ApiError(401, "mfa_failed", MFA_CODE_FAILED)
        return self._start_session(row, None, address)

    def _start_session(self, row: Any, password: str | None, address: str) -> tuple[User, str]:
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.engine.db.transaction() as conn:
            now = self.engine.now(conn)
            values: dict[str, Any] = {"failed_attempts": 0}
            if password is not None and _hasher.check_needs_rehash(row.password_hash):
                values["password_hash"] = _hasher.hash(password)
            conn.execute(update(users).where(users.c.id == row.id).values(**values))
            self._record_success(conn, row.username, address)
            conn.execute(insert(sessions).values(token_hash=_hash_token(token), user_id=row.id, created_at=now,
                                                 expires_at=now + self.settings.session_lifetime, csrf_token=csrf,
                                                 last_used_at=now))
        return self._user(row, csrf), token

    def _user(self, row: Any, csrf: str) -> User:
        """The user; one whose role must use a second factor and who has not set it up holds no role until
        they do (they can reach only their own pages: setting up the second factor, signing out), and one whose
        password an administrator chose holds none until they have chosen their own (`current_user` and the
        pages then lead only to changing it)."""
        user = _user(row, csrf)
        due = bool(user.roles & self.settings.mfa_required_roles) and not row.mfa_enabled
        change_due = bool(getattr(row, "password_change_due", False))
        if due or change_due:
            return User(user.id, user.username, user.display_name, frozenset(), user.teams, csrf, mfa_setup_due=due,
                        password_change_due=change_due)
        return user

    def session_user(self, token: str | None) -> User | None:
        """The session's user, or None (no session, ended, expired, idle too long, account deactivated). One
        statement (`_SESSION_USER`); a write only when the session ends for idleness or its last use moved by
        `touch_every`. It may wait for the database: in a worker thread (`current_user` tries `session_on_loop`
        first)."""
        if not token:
            return None
        token_hash = _hash_token(token)
        with self.engine.db.engine.connect() as conn:
            row = _SESSION_USER.first(conn, {"token_hash": token_hash})
            if row is None:
                return None
            now = self.engine.now_if_known(row.clock_now) or self.engine.now(conn)
        user, write = self._session_check(row, now)
        if write:
            self.write_session(token_hash, write, now)
        return user

    def session_on_loop(self, token: str) -> tuple[User | None, tuple[str, str, Any] | None] | None:
        """`session_user` without waiting, for the event loop: (user or None, the write still to make, in a worker
        thread: `write_session(*it)`), or None when it cannot be told without waiting (not a file SQLite
        database, the row locked, the clock mode not read yet): then `session_user` in a worker thread."""
        token_hash = _hash_token(token)
        read, row = self.reader.row(token_hash)
        return self._answer(token_hash, row) if read else None

    async def session_on_loop_pg(self, token: str) -> tuple[User | None, tuple[str, str, Any] | None] | None:
        """`session_on_loop` on PostgreSQL: the read awaited on the event loop (`PgSessionReader`)."""
        token_hash = _hash_token(token)
        read, row = await self.pg_reader.row(token_hash)
        return self._answer(token_hash, row) if read else None

    def _answer(self, token_hash: str, row: Any) -> tuple[User | None, tuple[str, str, Any] | None] | None:
        if row is None:
            return None, None
        now = self.engine.now_if_known(row.clock_now)
        if now is None:
            return None
        user, write = self._session_check(row, now)
        return user, ((token_hash, write, now) if write else None)

    def _session_check(self, row: Any, now: Any) -> tuple[User | None, str | None]:
        """(the user or None, "end" / "touch" / None: the write the session needs)."""
        if row is None or as_utc(row.expires_at) <= now or not row.active:
            return None, None  # a deactivated account's sessions end at once
        last = as_utc(row.last_used_at or row.session_started_at)
        idle = self.settings.idle_timeout
        if idle is not None and now - last > idle:  # unused for too long: it ends (used at exactly the limit: not)
            return None, "end"
        # at most one write a minute, not one a request
        return self._user(row, row.csrf_token), ("touch" if now - last >= self.settings.touch_every else None)

    def write_session(self, token_hash: str, write: str, now: Any) -> None:
        with self.engine.db.transaction() as conn:
            if write == "end":
                conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash))
            else:
                conn.execute(update(sessions).where(sessions.c.token_hash == token_hash).values(last_used_at=now))

    def open_session(self, user_id: int) -> tuple[User, str]:
        """A new session for an account someone else has authenticated (the council's identity provider,
        api/oidc.py): the same token, CSRF token and lifetime as a password sign-in. A deactivated account gets
        none (403)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.engine.db.transaction() as conn:
            now = self.engine.now(conn)
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
            if row is None or not row.active:
                raise ApiError(403, "deactivated", "this account has been deactivated")
            conn.execute(insert(sessions).values(token_hash=_hash_token(token), user_id=row.id, created_at=now,
                                                 expires_at=now + self.settings.session_lifetime, csrf_token=csrf,
                                                 last_used_at=now))
        return _user(row, csrf), token

    # ------------------------------------------------------------------ one's own password
    def change_password(self, user: User, old_token: str | None, current: str, new: str, confirm: str | None = None,
                        address: str = "local") -> tuple[User, str]:
        """The signed-in user chooses a new password. Refused: an account of the council's identity provider
        (403 `oidc_account`: it has no carepath password), password sign-in switched off (403), a back-off
        running (429), a busy pool (503); 422 `invalid` with field `errors` for a new password that breaks the
        rules (api/passwords.py), differs from its confirmation or is the current one, or a wrong current
        password (verified in the bounded pool and counted as a failed sign-in, as at sign-in). On success the
        password is changed, `password_change_due` cleared, every session of the account ends and a new one
        starts for this browser (a new token: returned), audited `user.password_changed` (no password)."""
        from engine import history
        from engine.history import Event

        from .oidc import NO_PASSWORD, is_linked

        if not self.settings.local_accounts:
            raise ApiError(403, "local_accounts_off", LOCAL_ACCOUNTS_OFF)
        with self.engine.db.engine.connect() as conn:
            now = self.engine.now(conn)
            row = conn.execute(select(users).where(users.c.id == user.id)).first()
            if row is None or not row.active:
                raise unauthenticated()
            if is_linked(conn, row.id) or row.password_hash == NO_PASSWORD:
                raise ApiError(403, "oidc_account", OIDC_PASSWORD)
            self._check_throttle(conn, now, row.username, address)
        errors: dict[str, str] = {}
        if not current:
            errors["current_password"] = "Enter your current password"
        problem = password_problem(new, row.username, row.display_name)
        if problem:
            errors["new_password"] = problem
        elif new == current:
            errors["new_password"] = "Your new password must be different from your current password"
        elif confirm is not None and confirm != new:
            errors["confirm_password"] = "The passwords do not match: type your new password again"
        if errors:  # nothing verified: a wrong current password is found only with an acceptable new one
            raise _invalid(errors)
        if not self.pool.verify(row.password_hash, current):
            with self.engine.db.transaction() as conn:
                self._record_failure(conn, self.engine.now(conn), row.username, address)
            raise _invalid({"current_password": CURRENT_WRONG})
        hashed = _hasher.hash(new)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.engine.db.transaction() as conn:
            now = self.engine.now(conn)
            conn.execute(update(users).where(users.c.id == row.id).values(
                password_hash=hashed, password_change_due=False, failed_attempts=0))
            self._record_success(conn, row.username, address)
            old_hash = _hash_token(old_token or "")
            ended = conn.execute(delete(sessions).where(sessions.c.user_id == row.id,
                                                        sessions.c.token_hash != old_hash)).rowcount
            conn.execute(delete(sessions).where(sessions.c.token_hash == old_hash))  # this one: a new token
            conn.execute(delete(mfa_challenges).where(mfa_challenges.c.user_id == row.id))
            conn.execute(insert(sessions).values(token_hash=_hash_token(token), user_id=row.id, created_at=now,
                                                 expires_at=now + self.settings.session_lifetime, csrf_token=csrf,
                                                 last_used_at=now))
            history.append(conn, history.SYSTEM_CHAIN, None, now, [Event(
                "user.password_changed", {"username": row.username, "other_sessions_ended": ended,
                                          **({"was_due": True} if row.password_change_due else {})},
                actor=row.username)], lock=self.engine.db.is_postgres)
            fresh = conn.execute(select(users).where(users.c.id == row.id)).first()
        return self._user(fresh, csrf), token

    def sign_out(self, token: str) -> None:
        with self.engine.db.transaction() as conn:
            conn.execute(delete(sessions).where(sessions.c.token_hash == _hash_token(token)))
            now = self.engine.now(conn)
            conn.execute(delete(sessions).where(sessions.c.expires_at <= now))  # tidy expired ones


OIDC_PASSWORD = ("your account signs in through the council's identity provider and has no carepath password: "
                 "change your password where you sign in to the council's other systems")
CURRENT_WRONG = "Your current password is wrong"
PASSWORD_CHANGE_DUE = ("an administrator chose your password: choose your own before anything else, on the page "
                       "/account/password or with PUT /api/session/password {current_password, new_password}")
# what an account whose password must be changed may still ask of the API
DUE_API = frozenset({("PUT", "/api/session/password"), ("DELETE", "/api/session"), ("GET", "/api/me")})


def _invalid(by_field: dict[str, str]) -> ApiError:
    first = next(iter(by_field.values()))
    return ApiError(422, "invalid", first, errors=[{"field": f, "message": m} for f, m in by_field.items()])


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# ---------------------------------------------------------------------- request dependencies
# The dependencies that only read the request or check a role are `async def`: FastAPI runs a plain `def`
# dependency in a worker thread, one hop per dependency per request (issue 14: half the server's time was
# such plumbing). `current_user` reads the database: on the event loop when that cannot wait (a file SQLite
# database, `SessionReader`), else in a worker thread; its rare writes always in a worker thread.
async def get_engine(request: Request) -> Any:
    return request.app.state.engine


async def get_store(request: Request) -> AuthStore:
    return request.app.state.auth


async def current_user(request: Request) -> User:
    """The signed-in user; 401 without a valid session, 403 when a state-changing request lacks CSRF.

    The store is read from the app, not through `get_store`: one dependency less to solve on every request."""
    store: AuthStore = request.app.state.auth
    token = request.cookies.get(COOKIE)
    found = store.session_on_loop(token) if token else (None, None)
    if found is None and store.pg_reader.usable:  # PostgreSQL: awaited on the event loop
        found = await store.session_on_loop_pg(token)  # type: ignore[arg-type]
    if found is None:  # it would have to wait: in a worker thread
        user = await run_in_threadpool(store.session_user, token)
    else:
        user, write = found
        if write is not None:  # the session ends for idleness, or its last use is written (once a minute)
            await run_in_threadpool(store.write_session, *write)
    if user is None:
        raise unauthenticated()
    if request.method in UNSAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent.encode(), user.csrf_token.encode()):
            raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header; nothing was changed")
    if user.password_change_due and (request.method, request.url.path) not in DUE_API:
        raise password_change_required()
    return user


def password_change_required() -> ApiError:
    """403 for everything but changing the password (and signing out) while an administrator's password stands;
    a page's address is sent to /account/password instead (api/errors.py)."""
    return ApiError(403, "password_change_required", PASSWORD_CHANGE_DUE, change_at="/api/session/password")


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


MFA_COOKIE = "carepath_mfa"  # the second step's challenge (HttpOnly, SameSite=Strict, 5 minutes)


def set_session_cookie(request: Request, response: Response, store: AuthStore, token: str) -> None:
    secure = store.settings.secure_cookie
    if secure is None:
        secure = request.url.scheme == "https"
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/")
    response.delete_cookie(MFA_COOKIE, path="/")


def set_challenge_cookie(request: Request, response: Response, store: AuthStore, challenge: str) -> None:
    secure = store.settings.secure_cookie
    if secure is None:
        secure = request.url.scheme == "https"
    response.set_cookie(MFA_COOKIE, challenge, httponly=True, samesite="strict", secure=secure, path="/",
                        max_age=int(store.settings.mfa_challenge_lifetime.total_seconds()))


SIGN_IN_REFUSALS: dict[int | str, dict[str, Any]] = {
    429: _error_body("Too many failed sign-ins from this address: wait (Retry-After, and the message says when)"),
    503: _error_body("Sign-in is busy: nothing was checked; try again in a few seconds (Retry-After)"),
}


@router.post("/session", responses=SIGN_IN_REFUSALS)
async def sign_in(body: SignIn, request: Request, response: Response,
                  store: Annotated[AuthStore, Depends(get_store)]) -> dict[str, Any]:
    """Sign in. An account with a second factor answers `{"mfa_required": true}` and a short-lived challenge
    cookie instead of a session: `POST /api/session/code` with the code then opens the session.

    `async`, so that a sign-in refused as busy takes no worker thread: the pages' requests need them."""
    if store.pool.saturated():
        raise busy()
    old = request.cookies.get(COOKIE)
    try:
        user, token = await run_in_threadpool(store.sign_in, body.username.strip().lower(), body.password,
                                              client_address(request))
    except CodeNeeded as step:
        set_challenge_cookie(request, response, store, step.challenge)
        return {"mfa_required": True, "message": "enter the code from your authenticator app"}
    if old:
        await run_in_threadpool(store.sign_out, old)  # a new session on every sign-in (no fixation)
    set_session_cookie(request, response, store, token)
    return {"user": user.public(), "csrf_token": user.csrf_token}


class MfaCode(BaseModel):
    code: str = Field(min_length=1, max_length=64)


@router.post("/session/code", responses=SIGN_IN_REFUSALS)
def sign_in_code(body: MfaCode, request: Request, response: Response,
                 store: Annotated[AuthStore, Depends(get_store)]) -> dict[str, Any]:
    """The second step of signing in: the code from the authenticator app, or a recovery code."""
    old = request.cookies.get(COOKIE)
    user, token = store.complete_mfa(request.cookies.get(MFA_COOKIE, ""), body.code, client_address(request))
    if old:
        store.sign_out(old)
    set_session_cookie(request, response, store, token)
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


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


@router.put("/session/password", responses={**SIGN_IN_REFUSALS, 403: _error_body(
    "The account signs in through the council's identity provider (`oidc_account`), or the CSRF token")})
async def change_password(body: PasswordChange, request: Request, response: Response,
                          user: Annotated[User, Depends(current_user)],
                          store: Annotated[AuthStore, Depends(get_store)]) -> dict[str, Any]:
    """Change one's own password (a local account): the current one and a new one that follows the password rules
    (422 with field `errors` otherwise; a wrong current password counts as a failed sign-in). Every other session
    of the account ends; this one continues under a new session cookie and CSRF token (in the answer)."""
    if store.pool.saturated():
        raise busy()
    fresh, token = await run_in_threadpool(store.change_password, user, request.cookies.get(COOKIE),
                                           body.current_password, body.new_password, None, client_address(request))
    set_session_cookie(request, response, store, token)
    return {"user": fresh.public(), "csrf_token": fresh.csrf_token, "password_changed": True}
