"""Server-rendered pages (GOV.UK Frontend markup): sign-in, the task inbox and the task page.

The pages use the JSON API's own rules — the session store and cookie (api/auth.py), the task
list query, `authorised_task` and the claim/complete actions (api/tasks.py) — so a page can
never show or do more than the API allows. The differences are only in transport:

* CSRF: every POST made with a session carries the session's token in a hidden `csrf_token`
  field (instead of the `X-CSRF-Token` header), compared in constant time; missing or wrong → 403.
* Sign-in has no session yet: its form carries a per-form token that must match a short-lived
  `carepath_signin` cookie (HttpOnly, SameSite=Strict), and the session cookie is SameSite=Strict.
* Signed out → redirect to /sign-in; forbidden → a 403 page; unknown task → a 404 page.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from engine.errors import ConflictError, NotFoundError, StateError, ValidationError

from . import page_kit
from . import tasks as task_api
from .auth import COOKIE, AuthStore, User
from .errors import ApiError
from .page_forms import Field, engine_errors, fields_for, fill, read_form
from .page_kit import CSP, DUE_SOON, MAX_BODY, templates  # noqa: F401

router = APIRouter(include_in_schema=False)

SIGNIN_COOKIE = "carepath_signin"
FLASH_COOKIE = "carepath_flash"
PAGE_SIZE = 20

_Redirect = page_kit.Redirect
_secure = page_kit.use_secure_cookie
_headers = page_kit.with_headers
_render = page_kit.render
_redirect = page_kit.redirect
_error_page = page_kit.error_page
_user = page_kit.session_user
_form = page_kit.posted_form
_csrf_ok = page_kit.csrf_ok
_date = page_kit.long_date
_due_tag = page_kit.due_tag
_guard = page_kit.guard
_signed_in = page_kit.signed_in


# ---------------------------------------------------------------------- sign-in / sign-out
def _sign_in_page(request: Request, *, error: str | None = None, username: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    resp = _render(request, "sign_in.html", {"user": None, "error": error, "username": username,
                                             "form_token": token}, status)
    resp.set_cookie(SIGNIN_COOKIE, token, httponly=True, samesite="strict", path="/sign-in", max_age=3600,
                    secure=_secure(request, request.app.state.auth))
    return resp


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    return _redirect("/tasks" if _user(request) else "/sign-in")


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request) -> Response:
    if _user(request) is not None:
        return _redirect("/tasks")
    return _sign_in_page(request)


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    form = await _form(request)
    sent = (form.get("form_token") or [""])[-1]
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _error_page(request, None, 403, "Sign-in form expired",
                           "The sign-in form has expired or was not sent from this site. Go back and try again.")
    username = (form.get("username") or [""])[-1].strip().lower()
    password = (form.get("password") or [""])[-1]
    store: AuthStore = request.app.state.auth
    if not username or not password:
        return _sign_in_page(request, error="Enter your username and password", username=username, status=400)
    try:
        user, token = await run_in_threadpool(store.sign_in, username[:64], password[:1024])
    except ApiError as exc:
        return _sign_in_page(request, error=exc.message[:1].upper() + exc.message[1:], username=username,
                             status=401)
    old = request.cookies.get(COOKIE)
    if old:
        await run_in_threadpool(store.sign_out, old)  # a new session on every sign-in (no fixation)
    resp = _redirect("/tasks")
    resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=_secure(request, store), path="/")
    resp.delete_cookie(SIGNIN_COOKIE, path="/sign-in")
    del user
    return resp


@router.post("/sign-out", response_class=HTMLResponse)
async def sign_out(request: Request) -> Response:
    form = await _form(request)
    user = _user(request)
    if user is None:
        return _redirect("/sign-in")
    if not _csrf_ok(user, form):
        return _error_page(request, user, 403, "You do not have permission to do that",
                           "The form was missing its security token; nothing was changed.")
    store: AuthStore = request.app.state.auth
    await run_in_threadpool(store.sign_out, request.cookies.get(COOKIE, ""))
    resp = _redirect("/sign-in")
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return resp


# ---------------------------------------------------------------------- inbox
@router.get("/tasks", response_class=HTMLResponse)
def inbox(request: Request, view: str = "team", page: int = 1) -> Response:
    user = None
    try:
        user = _signed_in(request)
        task_api.require_worker(user)
        engine = request.app.state.engine
        scope = "mine" if view == "mine" else "team"
        page = max(1, min(page, 10_000))
        result = task_api.list_tasks(user, engine, scope=scope, team=None, process=None, limit=PAGE_SIZE + 1,
                                     offset=(page - 1) * PAGE_SIZE)
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return _guard(request, user, exc)
    now = engine.now()
    rows = []
    for t in result["tasks"][:PAGE_SIZE]:
        rows.append({**t, "due_text": _date(t.get("due_at")), "tag": _due_tag(t.get("due_at"), now)})
    flash = unquote(request.cookies.get(FLASH_COOKIE, ""))
    resp = _render(request, "tasks.html", {
        "user": user, "view": scope, "rows": rows, "page": page, "has_next": len(result["tasks"]) > PAGE_SIZE,
        "flash": flash, "today": _date(now)})
    if flash:
        resp.delete_cookie(FLASH_COOKIE, path="/tasks")
    return resp


@router.post("/tasks/{task_id}/claim", response_class=HTMLResponse)
async def claim(request: Request, task_id: str) -> Response:
    form = await _form(request)
    user = None
    try:
        user = _signed_in(request)
        if not _csrf_ok(user, form):
            raise ApiError(403, "csrf", "The form was missing its security token; nothing was changed.")
        task_api.require_worker(user)
        rev = (form.get("revision") or [""])[-1]
        body = task_api.Revision(revision=int(rev)) if rev.isdigit() else None
        await run_in_threadpool(task_api.claim, task_id, user, request.app.state.engine, body)
    except ConflictError:
        return _error_page(request, user, 409, "This task has changed",
                           "Someone else claimed, completed or changed this task. Go back to your tasks and "
                           "reload the list.")
    except Exception as exc:  # noqa: BLE001
        return _guard(request, user, exc)
    return _redirect(f"/tasks/{quote(task_id)}")


# ---------------------------------------------------------------------- task page
def _task_context(request: Request, user: User, task: dict[str, Any], fields: list[Field], **extra: Any
                  ) -> dict[str, Any]:
    engine = request.app.state.engine
    now = engine.now()
    ctx = {"user": user, "task": task, "fields": fields, "errors": [], "conflict": None,
           "due_text": _date(task.get("due_at")), "tag": _due_tag(task.get("due_at"), now),
           "claimed_by_other": task.get("assignee") not in (None, user.username)}
    ctx.update(extra)
    return ctx


def _schema(engine: Any, task: dict[str, Any]) -> dict[str, Any]:
    if not task.get("form"):
        return {}
    try:
        return engine.forms.schema(task["form"])
    except NotFoundError:
        return {}


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
def task_page(request: Request, task_id: str) -> Response:
    user = None
    try:
        user = _signed_in(request)
        task_api.require_worker(user)
        engine = request.app.state.engine
        task = task_api.authorised_task(engine, user, task_id)
    except Exception as exc:  # noqa: BLE001
        return _guard(request, user, exc)
    fields = fields_for(_schema(engine, task))
    fill(fields, None)
    return _render(request, "task.html", _task_context(request, user, task, fields))


@router.post("/tasks/{task_id}", response_class=HTMLResponse)
async def complete(request: Request, task_id: str) -> Response:
    form = await _form(request)
    user = None
    try:
        user = _signed_in(request)
        if not _csrf_ok(user, form):
            raise ApiError(403, "csrf", "The form was missing its security token; nothing was changed.")
        task_api.require_worker(user)
        engine = request.app.state.engine
        task = await run_in_threadpool(task_api.authorised_task, engine, user, task_id)
    except ConflictError:
        return _error_page(request, user, 409, "This task has changed",
                           "Someone else completed or changed this task; nothing you typed was saved.")
    except Exception as exc:  # noqa: BLE001
        return _guard(request, user, exc)
    fields = fields_for(_schema(engine, task))
    data, local = read_form(fields, form)
    rev = (form.get("revision") or [""])[-1]
    revision = int(rev) if rev.isdigit() else None

    def again(status: int, messages: dict[str, str], general: list[str], conflict: str | None = None) -> Response:
        for f in fields:
            f.error = messages.get(f.name)
        summary = [{"text": f.error, "href": "#" + (f.id + "-day" if f.kind == "date" else
                                                    f.id if f.kind not in ("radios", "boolean", "checkboxes")
                                                    else f.id + "-0")}
                   for f in fields if f.error]
        summary += [{"text": g, "href": None} for g in general]
        return _render(request, "task.html", _task_context(request, user, task, fields, errors=summary,
                                                            conflict=conflict), status)

    if local:
        # check the rest too, without completing, so every error shows at once
        try:
            engine.forms.validate(task.get("form"), {k: v for k, v in data.items() if k not in local},
                                  task=task_id)
            messages, general = {}, []
        except ValidationError as exc:
            messages, general = engine_errors(fields, exc.errors)
        return again(400, {**messages, **local}, general)
    try:
        await run_in_threadpool(task_api.complete, task_id, task_api.Completion(data=data, revision=revision),
                                user, engine)
    except ValidationError as exc:
        messages, general = engine_errors(fields, exc.errors)
        if not messages and not general:
            general = [str(exc)]
        return again(400, messages, general)
    except (ConflictError, StateError):
        return again(409, {}, [], "Someone else completed or changed this task since you opened it, so nothing "
                                  "was saved. What you typed is still below: copy anything you need, then go "
                                  "back to your tasks.")
    except Exception as exc:  # noqa: BLE001
        return _guard(request, user, exc)
    resp = _redirect("/tasks?view=mine")
    flash = f"{task.get('name') or 'Task'} for {task.get('reference') or 'this case'}"[:200]
    resp.set_cookie(FLASH_COOKIE, quote(flash),
                    httponly=True, samesite="strict", path="/tasks", max_age=300,
                    secure=_secure(request, request.app.state.auth))
    return resp
