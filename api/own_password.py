"""Changing one's own password (local accounts): the page `/account/password` (the JSON API is
`PUT /api/session/password` in api/auth.py; both call `AuthStore.change_password`).

Linked from every page's header beside two-step verification. A password an administrator chose (a new account,
a new password set on the administration pages or API, directly or once a second administrator approved it)
must be changed here at the next sign-in — after the code when two-step verification is on — before any other
page opens (api/page_kit.py `signed_in`; the API answers 403 `password_change_required`): otherwise whoever
chose it could sign in as its owner (issue 15, docs/security.md "Passwords, sign-in and lock-out"). An account
of the council's identity provider has no carepath password: the page says where to change it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from . import page_kit as kit
from .auth import COOKIE, OIDC_PASSWORD, AuthStore, User, busy, client_address, set_session_cookie
from .errors import ApiError
from .passwords import MAX_PASSWORD

router = APIRouter(include_in_schema=False)
FIELDS = ("current_password", "new_password", "confirm_password")


def _linked(request: Request, user: User) -> bool:
    from .oidc import linked_username

    return linked_username(request.app.state.engine, user.username)


def _page(request: Request, user: User, *, by_field: dict[str, str] | None = None, error: str | None = None,
          done: bool = False, oidc: bool = False, status: int = 200) -> Response:
    by_field = by_field or {}
    errors = kit.error_summary(by_field, {}) or ([{"text": error}] if error else [])
    return kit.render(request, "account_password.html", {
        "user": user, "field_errors": by_field, "errors": errors, "done": done, "oidc": oidc,
        "oidc_message": OIDC_PASSWORD[:1].upper() + OIDC_PASSWORD[1:] + ".",
        "due": user.password_change_due, "landing": kit.landing(user)}, status)


@router.get(kit.PASSWORD_PAGE, response_class=HTMLResponse)
def password_page(request: Request) -> Response:
    user = None
    try:
        user = kit.signed_in(request)
        return _page(request, user, oidc=_linked(request, user))
    except Exception as exc:  # noqa: BLE001 - kit.guard re-raises anything it does not handle
        return kit.guard(request, user, exc)


@router.post(kit.PASSWORD_PAGE, response_class=HTMLResponse)
async def change_password(request: Request) -> Response:
    """Current password, new password and the new one again. The form's errors in a GOV.UK error summary linked
    to each field; on success a confirmation, this browser signed in under a new session cookie."""
    page = kit.Page(request)
    try:
        user = await page.post()
        store: AuthStore = request.app.state.auth
        if await run_in_threadpool(_linked, request, user):
            return _page(request, user, oidc=True, status=403)
        if store.pool.saturated():
            raise busy()
        values = [kit.one(page.form, f)[:MAX_PASSWORD + 1] for f in FIELDS]
        try:
            fresh, token = await run_in_threadpool(store.change_password, user, request.cookies.get(COOKIE),
                                                   *values, client_address(request))
        except ApiError as exc:
            if exc.status == 422:
                by_field = {e["field"]: e["message"] for e in exc.extra.get("errors", [])}
                return _page(request, user, by_field={f: by_field[f] for f in FIELDS if f in by_field}, status=400)
            if exc.status in (429, 503):
                return _page(request, user, error=exc.message[:1].upper() + exc.message[1:], status=exc.status)
            raise
        resp = _page(request, fresh, done=True)
        set_session_cookie(request, resp, store, token)
        return resp
    except Exception as exc:  # noqa: BLE001
        return page.guard(exc)
