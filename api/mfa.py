"""A second factor for local accounts: time-based one-time codes (TOTP, RFC 6238) and recovery codes.

NCSC "Multi-factor authentication for your corporate online services" asks for a second factor on accounts
that reach sensitive data, above all privileged ones. What this module does (docs/security.md, "Passwords,
sign-in and lock-out"):

* Enrolment (`/account/mfa`, `POST /api/me/mfa` then `/api/me/mfa/confirm`): a new random secret is shown as
  text and as an `otpauth://` address (no QR code: no QR library is installed, and the text key works in every
  authenticator app); it is switched on only when a code made from it is given back, and then ten one-time
  recovery codes are shown, once (only their SHA-256s are kept: each is 50 random bits).
* Signing in (`api/auth.py` `AuthStore.sign_in` / `complete_mfa`): after the right password the account's
  second step asks for the code; the session exists only once it is right. A code is accepted for its 30-second
  step and one step either side (clock drift), never twice: the last step used is kept and a code for it or an
  earlier step is refused. The time is the engine's injected clock, never the wall clock.
* At rest the secret is encrypted (Fernet: AES-128-CBC + HMAC-SHA256, `cryptography`) with a key from the
  configuration (`CAREPATH_MFA_KEY`, kept off the database server), so a copy of the database alone makes no
  codes. Without a key it is stored as text marked `plain:` (the demo and the tests); `carepath serve` warns.
* An administrator resets another person's second factor (a lost phone), audited as `user.mfa_reset` in the
  system history; never their own (another administrator must, as for their own roles: issue 15 item 1), and
  for an account holding the administrator role or a role that opens case records only once a second
  administrator approves it (api/admin.py `reset_mfa`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Annotated, Any

import pyotp
from cryptography.fernet import Fernet, InvalidToken
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import delete, select, update
from starlette.concurrency import run_in_threadpool

from engine import history
from engine.errors import NotFoundError
from engine.history import Event

from . import page_kit as kit
from .auth import (
    COOKIE,
    MFA_COOKIE,
    AuthSettings,
    AuthStore,
    User,
    client_address,
    current_user,
    mfa_challenges,
    require_roles,
    set_session_cookie,
    users,
)
from .errors import ApiError

ISSUER = "carepath"
STEP = 30  # seconds: the RFC 6238 default every authenticator app uses
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper and typed again


# ---------------------------------------------------------------------- secrets at rest
def _fernet(settings: AuthSettings) -> Fernet | None:
    if not settings.mfa_key:
        return None
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(settings.mfa_key.encode()).digest()))


def seal(settings: AuthSettings, secret: str) -> str:
    f = _fernet(settings)
    return "plain:" + secret if f is None else "fernet:" + f.encrypt(secret.encode()).decode()


def unseal(settings: AuthSettings, stored: str) -> str:
    kind, _, value = stored.partition(":")
    if kind == "plain":
        return value
    f = _fernet(settings)
    if f is None:
        raise ApiError(503, "mfa_key_missing", "two-step verification cannot be checked: the server's MFA key "
                                               "(CAREPATH_MFA_KEY) is not configured; tell the administrators")
    try:
        return f.decrypt(value.encode()).decode()
    except InvalidToken as exc:
        raise ApiError(503, "mfa_key_wrong", "two-step verification cannot be checked: the server's MFA key "
                                             "(CAREPATH_MFA_KEY) is not the one the secret was made with") from exc


# ---------------------------------------------------------------------- codes
def _normal(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def _hash(code: str) -> str:
    return hashlib.sha256(_normal(code).encode()).hexdigest()


def _matching_step(secret: str, code: str, now: Any, last_step: int | None) -> int | None:
    """The time step (one either side of now's) whose code is `code` and that is later than `last_step`."""
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp, step = pyotp.TOTP(secret), int(now.timestamp()) // STEP
    for s in (step - 1, step, step + 1):
        if hmac.compare_digest(totp.generate_otp(s), code) and (last_step is None or s > last_step):
            return s
    return None


def accept_code(conn: Any, settings: AuthSettings, row: Any, code: str, now: Any) -> bool:
    """True, and the code used up, when `code` is the account's current TOTP code (not used before) or one of
    its unused recovery codes; `now` is the engine's clock."""
    code = _normal(code)
    step = _matching_step(unseal(settings, row.mfa_secret), code, now, row.mfa_last_step)
    if step is not None:
        conn.execute(update(users).where(users.c.id == row.id).values(mfa_last_step=step))
        return True
    kept = list(_json_list(row.mfa_recovery))
    digest = _hash(code)
    for h in kept:
        if hmac.compare_digest(h, digest):
            kept.remove(h)
            conn.execute(update(users).where(users.c.id == row.id).values(mfa_recovery=kept))
            return True
    return False


def _json_list(value: Any) -> list[str]:
    import json

    return json.loads(value) if isinstance(value, str) else list(value or [])


def _recovery_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


# ---------------------------------------------------------------------- enrolment, reset
def _row(conn: Any, username: str) -> Any:
    row = conn.execute(select(users).where(users.c.username == username)).first()
    if row is None:
        raise NotFoundError(f"no user {username!r}", user=username)
    return row


def status(engine: Any, user: User) -> dict[str, Any]:
    with engine.db.engine.connect() as conn:
        row = _row(conn, user.username)
    return {"enabled": bool(row.mfa_enabled), "pending": bool(row.mfa_secret) and not row.mfa_enabled,
            "recovery_codes_left": len(_json_list(row.mfa_recovery)) if row.mfa_enabled else 0}


def start(engine: Any, settings: AuthSettings, user: User) -> dict[str, Any]:
    """A new secret for the user's own account, not yet switched on: 409 when their second factor is on."""
    secret = pyotp.random_base32()
    with engine.db.transaction() as conn:
        row = _row(conn, user.username)
        if row.mfa_enabled:
            raise ApiError(409, "mfa_on", "two-step verification is already on for your account; if you have lost "
                                          "your authenticator app, use a recovery code or ask an administrator")
        conn.execute(update(users).where(users.c.id == row.id).values(
            mfa_secret=seal(settings, secret), mfa_enabled=False, mfa_last_step=None, mfa_recovery=None))
    return {"secret": secret, "key": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
            "uri": pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=ISSUER)}


def pending_key(engine: Any, settings: AuthSettings, user: User) -> dict[str, Any] | None:
    """The secret being set up (shown again when a wrong code is given), or None."""
    with engine.db.engine.connect() as conn:
        row = _row(conn, user.username)
    if row.mfa_enabled or not row.mfa_secret:
        return None
    secret = unseal(settings, row.mfa_secret)
    return {"secret": secret, "key": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
            "uri": pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=ISSUER)}


WRONG_ENROL_CODE = "Enter the 6-digit code your authenticator app shows now for carepath"


def confirm(engine: Any, settings: AuthSettings, user: User, code: str) -> dict[str, Any]:
    """Switch the second factor on with a code made from the new secret; returns the recovery codes (shown
    once). 422 (field `code`) for a wrong code, 409 when nothing is being set up."""
    codes = [_recovery_code() for _ in range(RECOVERY_CODES)]
    with engine.db.transaction() as conn:
        now = engine.now(conn)
        row = _row(conn, user.username)
        if row.mfa_enabled or not row.mfa_secret:
            raise ApiError(409, "mfa_not_started", "there is no two-step verification being set up: start again")
        step = _matching_step(unseal(settings, row.mfa_secret), _normal(code), now, row.mfa_last_step)
        if step is None:
            raise ApiError(422, "invalid", WRONG_ENROL_CODE, errors=[{"field": "code", "message": WRONG_ENROL_CODE}])
        conn.execute(update(users).where(users.c.id == row.id).values(
            mfa_enabled=True, mfa_last_step=step, mfa_recovery=[_hash(c) for c in codes]))
        _audit(conn, engine, now, "user.mfa_enabled", {"username": user.username}, user)
    return {"enabled": True, "recovery_codes": codes}


def reset(engine: Any, admin: User, username: str) -> dict[str, Any]:
    """An administrator switches off another person's second factor (they set it up again at next sign-in
    when their role needs it). Never their own: another administrator must (403). For an account that holds the
    administrator role or a role that opens case records, with the second factor on, it waits for a second
    administrator (api/admin.py `reset_mfa`, issue 15 item 1): the answer's `pending_request` says so."""
    from . import admin as admin_pages

    return admin_pages.reset_mfa(engine, admin, username)


def apply_reset(conn: Any, engine: Any, now: Any, row: Any, actor: User, request: int | None = None) -> bool:
    """Switch the second factor of the account `row` off, in the caller's transaction; audited `user.mfa_reset`
    (with the approved request's id when it waited for a second administrator). Whether it was on."""
    was_on = bool(row.mfa_enabled)
    conn.execute(update(users).where(users.c.id == row.id).values(
        mfa_secret=None, mfa_enabled=False, mfa_last_step=None, mfa_recovery=None))
    conn.execute(delete(mfa_challenges).where(mfa_challenges.c.user_id == row.id))
    _audit(conn, engine, now, "user.mfa_reset", {"username": row.username, "was_on": was_on,
                                                 **({"request": request} if request is not None else {})}, actor)
    return was_on


def _audit(conn: Any, engine: Any, now: Any, type_: str, data: dict[str, Any], actor: User) -> None:
    history.append(conn, history.SYSTEM_CHAIN, None, now, [Event(type_, data, actor=actor.username)],
                   lock=engine.db.is_postgres)


# ---------------------------------------------------------------------- API
router = APIRouter(prefix="/api")


class Code(BaseModel):
    code: str = Field(min_length=1, max_length=64)


@router.post("/me/mfa")
def api_start(request: Request, user: Annotated[User, Depends(current_user)]) -> dict[str, Any]:
    """Start setting up two-step verification on one's own account: the secret as text and otpauth address."""
    return start(request.app.state.engine, request.app.state.auth.settings, user)


@router.post("/me/mfa/confirm")
def api_confirm(body: Code, request: Request, user: Annotated[User, Depends(current_user)]) -> dict[str, Any]:
    """Switch it on with a code from the app; answers the recovery codes, shown this once."""
    return confirm(request.app.state.engine, request.app.state.auth.settings, user, body.code)


@router.post("/admin/users/{username}/mfa-reset",
             responses={202: {"description": "Waits for a second administrator (`pending_request`)"}})
def api_reset(username: str, request: Request, response: Response,
              admin: Annotated[User, Depends(require_roles("administrator"))]) -> dict[str, Any]:
    """Switch off another person's two-step verification (audited); not one's own. 202 with `pending_request`
    when the account holds the administrator role or a role that opens case records: a second administrator
    approves it (`/api/admin/role-requests`)."""
    out = reset(request.app.state.engine, admin, username)
    if out["waits"]:
        response.status_code = 202
    return out


# ---------------------------------------------------------------------- pages
pages = APIRouter(include_in_schema=False)
CODE_FIELD = "code"


def _code_page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    return kit.render(request, "sign_in_code.html", {"user": None, "error": error,
                                                     "errors": [error] if error else []}, status)


@pages.get("/sign-in/code", response_class=HTMLResponse)
def sign_in_code_form(request: Request) -> Response:
    if not request.cookies.get(MFA_COOKIE):
        return kit.redirect("/sign-in")
    return _code_page(request)


@pages.post("/sign-in/code", response_class=HTMLResponse)
async def sign_in_code(request: Request) -> Response:
    """The second sign-in page. The challenge cookie (HttpOnly, SameSite=Strict, set only after the right
    password) is the form's proof of origin: a cross-site form cannot send it."""
    form = await kit.posted_form(request)
    challenge = request.cookies.get(MFA_COOKIE, "")
    if not challenge:
        return kit.redirect("/sign-in")
    code = kit.one(form, CODE_FIELD).strip()[:64]
    if not code:
        return _code_page(request, error="Enter the code from your authenticator app", status=400)
    store: AuthStore = request.app.state.auth
    try:
        user, token = await run_in_threadpool(store.complete_mfa, challenge, code, client_address(request))
    except ApiError as exc:
        if exc.code == "mfa_expired":
            resp = kit.redirect("/sign-in")
            resp.delete_cookie(MFA_COOKIE, path="/")
            return resp
        return _code_page(request, error=exc.message[:1].upper() + exc.message[1:], status=exc.status)
    old = request.cookies.get(COOKIE)
    if old:
        await run_in_threadpool(store.sign_out, old)
    resp = kit.redirect(kit.landing(user))  # a password an administrator chose is changed first
    set_session_cookie(request, resp, store, token)
    return resp


def _account_page(request: Request, user: User, *, key: dict[str, Any] | None = None, codes: list[str] | None = None,
                  error: str | None = None, status: int = 200) -> Response:
    info = status_of(request, user)
    return kit.render(request, "account_mfa.html", {
        "user": user, "info": info, "key": key, "codes": codes, "error": error,
        "errors": [error] if error else [],
        "required": bool(user.mfa_setup_due)}, status)


def status_of(request: Request, user: User) -> dict[str, Any]:
    return status(request.app.state.engine, user)


@pages.get("/account/mfa", response_class=HTMLResponse)
def account_mfa(request: Request) -> Response:
    try:
        user = kit.signed_in(request)
        key = pending_key(request.app.state.engine, request.app.state.auth.settings, user)
        return _account_page(request, user, key=key)
    except Exception as exc:  # noqa: BLE001 - kit.guard re-raises anything it does not handle
        return kit.guard(request, None, exc)


@pages.post("/account/mfa", response_class=HTMLResponse)
async def account_mfa_post(request: Request) -> Response:
    """`action` start (a new secret shown) or confirm (with `code`: switched on, recovery codes shown once)."""
    user = None
    engine, settings = request.app.state.engine, request.app.state.auth.settings
    try:
        form = await kit.posted_form(request)
        user = kit.signed_in(request)
        kit.check_csrf(user, form)
        action = kit.one(form, "action")
        if action == "start":
            key = await run_in_threadpool(start, engine, settings, user)
            return _account_page(request, user, key=key)
        if action == "confirm":
            try:
                out = await run_in_threadpool(confirm, engine, settings, user, kit.one(form, CODE_FIELD)[:64])
            except ApiError as exc:
                if exc.status != 422:
                    raise
                key = await run_in_threadpool(pending_key, engine, settings, user)
                return _account_page(request, user, key=key, error=exc.message, status=400)
            # the session's user no longer needs to set it up: read again, so the page shows their roles back
            fresh = request.app.state.auth.session_user(request.cookies.get(COOKIE)) or user
            return _account_page(request, fresh, codes=out["recovery_codes"])
        raise ApiError(400, "invalid", "Unknown action; nothing was changed.")
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, user, exc)
