"""What every server-rendered page shares: templates, security headers, CSRF check, errors.

Pages call the JSON API's own rules (api/auth.py, api/access.py, api/tasks.py) so a page can
never show or do more than the API allows; this module only adapts them to HTML:

* `signed_in` redirects to /sign-in without a session; `guard` turns a refusal into a 403 page,
  an unknown id into a 404 page and a conflict into a 409 page.
* `Page` opens a page request the same way on every route: signed in, then (for a POST) the form
  read and its CSRF token checked, then the route's own access check; it remembers who is signed in
  as soon as that is known, so that an error page still shows them signed in.
* `page_user` is the signed-in user refused (403) unless they hold one of the roles a page is for.
* `csrf_ok`/`check_csrf`: every POST made with a session carries the session's token in a hidden
  `csrf_token` field, compared in constant time.
* `render`/`redirect` add the security headers (CSP without inline script, no framing, no-store).
"""

from __future__ import annotations

import hmac
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from engine.clock import as_utc
from engine.errors import ConflictError, NotFoundError, StateError

from .auth import COOKIE, AuthStore, User
from .errors import ApiError

UK = ZoneInfo("Europe/London")  # pages show dates and times in UK time, as the case record does
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))


def _long_day(value: Any) -> str:
    """A date as the pages write one ("1 April 2026"), for templates: `{{ value|long_day }}`."""
    from .case_record import long_day
    return long_day(value)


templates.env.filters["long_day"] = _long_day
DUE_SOON = timedelta(days=2)
MAX_BODY = 256 * 1024
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


class Redirect(Exception):
    def __init__(self, url: str) -> None:
        self.url = url


# ---------------------------------------------------------------------- helpers
def use_secure_cookie(request: Request, store: AuthStore) -> bool:
    s = store.settings.secure_cookie
    return request.url.scheme == "https" if s is None else s


def with_headers(resp: Response) -> Response:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def attachment(content: bytes, media_type: str, filename: str) -> Response:
    """A file to download (an export), with the pages' headers: never cached, never sniffed."""
    return with_headers(Response(content, media_type=media_type,
                                 headers={"Content-Disposition": f'attachment; filename="{filename}"'}))


def render(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> Response:
    return with_headers(templates.TemplateResponse(request, name, ctx, status_code=status))


def redirect(url: str) -> Response:
    return with_headers(RedirectResponse(url, status_code=303))


def error_page(request: Request, user: User | None, status: int, title: str, message: str) -> Response:
    if user is None:  # refused before the route knew who asked: a signed-in user is offered their home page
        try:
            user = session_user(request)
        except Exception:  # noqa: BLE001 - an error page must not fail on a broken session
            user = None
    return render(request, "error.html", {"user": user, "title": title, "message": message}, status)


def session_user(request: Request) -> User | None:
    store: AuthStore = request.app.state.auth
    return store.session_user(request.cookies.get(COOKIE))


async def posted_form(request: Request) -> dict[str, list[str]]:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ApiError(413, "too_large", "the form is too large")
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def csrf_ok(user: User, form: dict[str, list[str]]) -> bool:
    sent = (form.get("csrf_token") or [""])[-1]
    return bool(sent) and hmac.compare_digest(sent.encode(), user.csrf_token.encode())


#: a form sent with another session's token: loaded before the user signed in again (or in another session)
STALE_FORM = ("This form was loaded in an earlier session (you have signed in again since, or signed in as someone "
              "else in another window), so it was not sent and nothing was changed. Go back, reload the page and "
              "send the form again.")
MISSING_TOKEN = "The form was missing its security token; nothing was changed."


def token_expired(form: dict[str, list[str]]) -> bool:
    """A form refused by `csrf_ok` that carried a token (another session's), rather than none."""
    return bool((form.get("csrf_token") or [""])[-1])


def check_csrf(user: User, form: dict[str, list[str]]) -> None:
    """Refuse (403, nothing changed) a POST whose form does not carry the session's CSRF token: a token of another
    session is said as an expired form, not as a missing token."""
    if not csrf_ok(user, form):
        if token_expired(form):
            raise ApiError(403, "csrf", STALE_FORM, expired=True)
        raise ApiError(403, "csrf", MISSING_TOKEN)


def one(form: dict[str, list[str]], name: str) -> str:
    """The last value the form sent for `name`; "" when it sent none."""
    return (form.get(name) or [""])[-1]


def posted_date(form: dict[str, list[str]], prefix: str) -> tuple[str, str, str, str]:
    """The day, month and year typed in the GOV.UK date input `prefix` (intake_macros.html date_input), and
    the ISO date they make: "" when all three are blank, "not-a-date" when they make no real date."""
    d, m, y = (one(form, f"{prefix}-{p}").strip() for p in ("day", "month", "year"))
    if not (d or m or y):
        return d, m, y, ""
    try:
        return d, m, y, date(int(y), int(m), int(d)).isoformat()
    except ValueError:
        return d, m, y, "not-a-date"


def error_summary(by_field: dict[str, str], anchors: dict[str, str]) -> list[dict[str, str]]:
    """The error summary's items (`_macros.html`): each field's message, linked to `#anchor` (the field's
    name unless `anchors` names the element to focus)."""
    return [{"text": msg, "href": "#" + anchors.get(name, name)} for name, msg in by_field.items()]


def long_date(value: datetime | None) -> str:
    """An instant as its UK calendar date ("1 April 2031"); a naive datetime is taken to be UTC."""
    if value is None:
        return ""
    local = as_utc(value).astimezone(UK)
    return f"{local.day} {local:%B %Y}"


def due_tag(due: datetime | None, now: datetime) -> tuple[str, str] | None:
    if due is None:
        return None
    if due < now:
        return "Overdue", "govuk-tag--red"
    if due <= now + DUE_SOON:
        return "Due soon", "govuk-tag--yellow"
    return None


def guard(request: Request, user: User | None, exc: Exception, *,
          not_found: str = "There is no open task at this address.",
          conflict_title: str = "This task has changed") -> Response:
    if isinstance(exc, Redirect):
        return redirect(exc.url)
    if isinstance(exc, ApiError):
        if exc.status == 401:
            return redirect("/sign-in")
        if exc.status == 403 and exc.extra.get("expired"):
            return error_page(request, user, 403, "This form has expired", exc.message)
        if exc.status == 403:
            return error_page(request, user, 403, "You do not have permission to see this page", exc.message)
        return error_page(request, user, exc.status, "Sorry, there is a problem", exc.message)
    if isinstance(exc, NotFoundError):
        return error_page(request, user, 404, "Page not found", not_found)
    if isinstance(exc, (ConflictError, StateError)):
        return error_page(request, user, 409, conflict_title, str(exc))
    raise exc


PASSWORD_PAGE = "/account/password"  # api/own_password.py
MFA_PAGE = "/account/mfa"  # api/mfa.py


def signed_in(request: Request) -> User:
    """The signed-in user; without a session a redirect to /sign-in, and while an administrator's password stands
    (`User.password_change_due`) a redirect to the page that changes it, from every page but that one."""
    user = session_user(request)
    if user is None:
        raise Redirect("/sign-in")
    if user.password_change_due and request.url.path != PASSWORD_PAGE:
        raise Redirect(PASSWORD_PAGE)
    return user


def landing(user: User) -> str:
    """Where a user starts: changing a password an administrator chose, then setting up a second factor their
    role must use, else caseworkers in their inbox and everyone else on the home page."""
    if user.password_change_due:
        return PASSWORD_PAGE
    if user.mfa_setup_due:  # a role that must use a second factor holds nothing till it is set up
        return MFA_PAGE
    return "/tasks" if user.is_worker else "/home"


def page_user(request: Request, *roles: str, refusal: str = "") -> User:
    """The signed-in user, refused (403) unless they hold one of `roles`; the refusal says who the page is
    for ("This page is for team managers and auditors.") unless `refusal` words it."""
    user = signed_in(request)
    if not user.has(*roles):
        raise ApiError(403, "forbidden", refusal or "This page is for " + " and ".join(
            r.replace("_", " ") + "s" for r in roles) + ".")
    return user


Check = Callable[..., Any]  # check(engine, user, *args, **kw): raises to refuse (api.cases._writer, open_case ...)


class Page:
    """One page request being opened. `user` is None until the session is known, then the signed-in
    user even when a later check refuses, so that `guard`'s error page shows them signed in.

    The order is the same on every route: signed in (else a redirect to /sign-in), then for a POST the
    form read (413 when too large) and its CSRF token checked (403, nothing changed), then the route's
    access check (403 or 404)."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.engine: Any = request.app.state.engine
        self.user: User | None = None
        self.form: dict[str, list[str]] = {}

    def open(self, check: Check | None = None, *args: Any, **kw: Any) -> User:
        """A page read (GET): the signed-in user, who must pass `check(engine, user, *args, **kw)`."""
        self.user = signed_in(self.request)
        if check is not None:
            check(self.engine, self.user, *args, **kw)
        return self.user

    async def post(self, check: Check | None = None, *args: Any, **kw: Any) -> User:
        """A form POSTed: the signed-in user, the form in `self.form` carrying the session's CSRF token, and
        `check(engine, user, *args, **kw)` passed (run in a worker thread: it reads the database)."""
        self.user = signed_in(self.request)
        self.form = await posted_form(self.request)
        check_csrf(self.user, self.form)
        if check is not None:
            await run_in_threadpool(check, self.engine, self.user, *args, **kw)
        return self.user

    def guard(self, exc: Exception, **kw: Any) -> Response:
        """`guard` for this request, with whoever is signed in."""
        return guard(self.request, self.user, exc, **kw)
