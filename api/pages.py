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
import re
import secrets
from typing import Any
from urllib.parse import quote, unquote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from engine.clock import parse_instant
from engine.errors import ConflictError, NotFoundError, StateError, ValidationError
from engine.schema import cases, instances

from . import break_glass, prefill, processes
from . import page_kit as kit
from . import tasks as task_api
from .access import log_access, restriction
from .auth import (
    COOKIE,
    OVERSIGHT_ROLES,
    AuthStore,
    CodeNeeded,
    User,
    busy,
    client_address,
    json_set,
    set_challenge_cookie,
    users,
)
from .case_pages import case_panel
from .errors import ApiError
from .inputs import whole
from .page_forms import Field, change_items, engine_errors, fields_for, fill, keep_unedited, read_form, set_errors, walk

router = APIRouter(include_in_schema=False)

SIGNIN_COOKIE = "carepath_signin"
FLASH_COOKIE = "carepath_flash"
PAGE_SIZE = 20



# ---------------------------------------------------------------------- sign-in / sign-out
def _sign_in_page(request: Request, *, error: str | None = None, username: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    provider = getattr(request.app.state, "oidc", None)  # the council's identity provider (api/oidc.py)
    resp = kit.render(request, "sign_in.html", {"user": None, "error": error, "username": username,
                                             "form_token": token,
                                             "oidc_name": provider.settings.name if provider else None,
                                             "local_accounts": request.app.state.auth.settings.local_accounts},
                      status)
    resp.set_cookie(SIGNIN_COOKIE, token, httponly=True, samesite="strict", path="/sign-in", max_age=3600,
                    secure=kit.use_secure_cookie(request, request.app.state.auth))
    return resp


def _landing(user: User) -> str:
    """Where a user starts (page_kit.landing): caseworkers in their inbox, everyone else on the home page, and
    first the page that changes a password an administrator chose."""
    return kit.landing(user)


@router.get("/", response_class=HTMLResponse)
def root(request: Request) -> Response:
    user = kit.session_user(request)
    return kit.redirect(_landing(user) if user else "/sign-in")


def _home(request: Request, user: User, *, reference: str = "", not_found: str | None = None,
          status: int = 200) -> Response:
    return kit.render(request, "home.html", {
        "user": user, "roles": ", ".join(sorted(r.replace("_", " ") for r in user.roles)) or "none",
        "can_open_cases": bool(user.roles & OVERSIGHT_ROLES), "reference": reference, "not_found": not_found,
        "errors": [not_found] if not_found else [],
        "to_review": processes.waiting_for(request.app.state.engine, user),
        # break-glass uses no administrator has reviewed yet (api/break_glass.py): the administrators' notification
        "break_glass_waiting": break_glass.waiting_review(request.app.state.engine) if user.has(*break_glass.REVIEWERS)
        else 0}, status)


@router.get("/home", response_class=HTMLResponse)
def home(request: Request) -> Response:
    try:
        user = kit.signed_in(request)
    except Exception as exc:  # noqa: BLE001 - kit.guard re-raises anything it does not handle
        return kit.guard(request, None, exc)
    return _home(request, user)


@router.get("/cases/open", response_class=HTMLResponse)
def open_case_by_reference(request: Request, reference: str = "") -> Response:
    """Auditors and managers open a case record by its reference (access is checked on the record page)."""
    try:
        user = kit.signed_in(request)
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, None, exc)
    ref = reference.strip().upper()[:64]
    case_id = None
    engine = request.app.state.engine
    if ref:
        with engine.db.engine.connect() as conn:
            case_id = conn.execute(select(cases.c.id).where(cases.c.reference == ref)).scalar()
            allowed = restriction(conn, case_id) if case_id is not None else None
        # a restricted case does not exist for anyone not named on it (docs/security.md "Restricted cases"): its
        # reference is answered as an unknown one — unless a break-glass use of it is running — and logged refused
        if (allowed is not None and user.username not in allowed
                and break_glass.reading_use(engine, user, case_id, "open") is None):
            log_access(engine, case_id, user, "refused:open")
            case_id = None
    if case_id is None:
        message = "Enter a case reference" if not ref else f"There is no case {ref}: check the reference"
        return _home(request, user, reference=reference[:64], not_found=message, status=404 if ref else 400)
    return kit.redirect(f"/cases/{case_id}")


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request) -> Response:
    user = kit.session_user(request)
    if user is not None:
        return kit.redirect(_landing(user))
    return _sign_in_page(request)


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    form = await kit.posted_form(request)
    sent = kit.one(form, "form_token")
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return kit.error_page(request, None, 403, "Sign-in form expired",
                           "The sign-in form has expired or was not sent from this site. Go back and try again.")
    username = kit.one(form, "username").strip().lower()
    password = kit.one(form, "password")
    store: AuthStore = request.app.state.auth
    if not username or not password:
        return _sign_in_page(request, error="Enter your username and password", username=username, status=400)
    if store.pool.saturated():  # busy: answered at once, without taking a worker thread (api/auth.py VerifyPool)
        exc = busy()
        return _sign_in_page(request, error=exc.message[:1].upper() + exc.message[1:], username=username,
                             status=exc.status)
    try:
        user, token = await run_in_threadpool(store.sign_in, username[:64], password[:1024],
                                              client_address(request))
    except CodeNeeded as step:  # the password was right; the code is asked on a second page (api/mfa.py)
        resp = kit.redirect("/sign-in/code")
        set_challenge_cookie(request, resp, store, step.challenge)
        resp.delete_cookie(SIGNIN_COOKIE, path="/sign-in")
        return resp
    except ApiError as exc:  # 401 wrong or unknown, 429 back-off running, 503 busy: said on the page
        return _sign_in_page(request, error=exc.message[:1].upper() + exc.message[1:], username=username,
                             status=exc.status)
    old = request.cookies.get(COOKIE)
    if old:
        await run_in_threadpool(store.sign_out, old)  # a new session on every sign-in (no fixation)
    resp = kit.redirect(_landing(user))
    resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=kit.use_secure_cookie(request, store),
                    path="/")
    resp.delete_cookie(SIGNIN_COOKIE, path="/sign-in")
    return resp


@router.post("/sign-out", response_class=HTMLResponse)
async def sign_out(request: Request) -> Response:
    form = await kit.posted_form(request)
    user = kit.session_user(request)
    if user is None:
        return kit.redirect("/sign-in")
    if not kit.csrf_ok(user, form):
        if kit.token_expired(form):
            return kit.error_page(request, user, 403, "This form has expired", kit.STALE_FORM)
        return kit.error_page(request, user, 403, "You do not have permission to do that", kit.MISSING_TOKEN)
    store: AuthStore = request.app.state.auth
    await run_in_threadpool(store.sign_out, request.cookies.get(COOKIE, ""))
    resp = kit.redirect("/sign-in")
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return resp


# ---------------------------------------------------------------------- inbox
def stopped_after(engine: Any, task: dict[str, Any]) -> str | None:
    """What stopped the process just after this task was completed (the step that follows it raised an error and
    is now an incident for an administrator: a charging figure not in charging.json), in the words the error
    gave, or None. The person who completed the task is told, not shown "Task completed" alone."""
    try:
        found = [i for i in engine.incidents() if i.get("instance_id") == task.get("instance_id")]
    except Exception:  # noqa: BLE001 - nothing to say is better than no page
        return None
    if not found:
        return None
    message = str(found[-1].get("message") or "")
    message = re.sub(r"^[A-Za-z]+Error: ", "", message)
    return message[:1].upper() + message[1:]


def stopped_page(request: Request, user: Any, task: dict[str, Any], problem: str) -> Response:
    return kit.error_page(
        request, user, 200, "Your answers are saved, but the next step stopped",
        f"{_name(task)} is complete and your answers are kept. The step after it could not be done: {problem} "
        "Nothing has been sent to the person. An administrator must put this right and retry the step; until "
        "then the case shows it as stopped by a problem.")


def _flash(request: Request, resp: Response, text: str) -> Response:
    resp.set_cookie(FLASH_COOKIE, quote(text[:300]), httponly=True, samesite="strict", path="/tasks", max_age=300,
                    secure=kit.use_secure_cookie(request, request.app.state.auth))
    return resp


def _processes(engine: Any) -> list[tuple[str, str]]:

    from engine.schema import process_versions

    with engine.db.engine.connect() as conn:
        rows = conn.execute(select(process_versions.c.process_id, process_versions.c.name)
                            .order_by(process_versions.c.process_id, process_versions.c.id)).all()
    return sorted({r.process_id: r.name for r in rows}.items(), key=lambda kv: kv[1].lower())


INBOX_FIELDS = {"view": "f-view", "scope": "f-view", "team": "f-team", "process": "f-process", "task": "f-task",
                "person": "f-person", "due": "f-due", "within": "f-within", "sort": "f-sort", "order": "f-order",
                "page": "f-page"}


@router.get("/tasks", response_class=HTMLResponse)
def inbox(request: Request) -> Response:
    user = None
    try:
        user = kit.signed_in(request)
        task_api.require_worker(user)
        engine = request.app.state.engine
        params = request.query_params
        raw = {k: params.get(k) for k in task_api.FILTER_NAMES if k != "scope"}
        raw["scope"] = params.get("view")
        filters, errors = task_api.parse_filters(raw)
        for e in errors:
            if e["field"] == "scope":
                e["field"] = "view"
        page_raw = (params.get("page") or "1").strip()
        page = whole(page_raw, 1, 10_000) or 0
        if not page:
            errors.append({"field": "page", "message": "Page must be a whole number from 1 to 10000"})
            page = 1
        if filters.team is not None and filters.team not in user.teams:
            errors.append({"field": "team", "message": "Team must be one of your teams"})
            filters.team = None
        shown = filters
        if errors:  # show the list without the filters, and say what is wrong
            shown = task_api.Filters(scope=filters.scope)
        result = task_api.search_tasks(engine, user, shown, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return kit.guard(request, user, exc)
    now = engine.now()
    rows = []
    names = people_names(engine, [n for t in result["tasks"][:PAGE_SIZE] for n in (t.get("assignee"), t.get(
        "delegated_by")) if n != user.username])
    for t in result["tasks"][:PAGE_SIZE]:
        paused = t.get("paused")  # a paused process (in hospital): its date is frozen, neither overdue nor due
        rows.append({**t, "due_text": "" if paused else kit.long_date(t.get("due_at")),
                     "tag": (paused["tag"], "govuk-tag--grey") if paused else kit.due_tag(t.get("due_at"), now),
                     "follow_text": kit.long_date(t.get("follow_up_at")),
                     "follow_due": t.get("follow_up_at") is not None and t["follow_up_at"] <= now,
                     "offered": t.get("assignee") is None and user.username in (t.get("candidate_users") or [])})
    flash = unquote(request.cookies.get(FLASH_COOKIE, ""))
    query = {("view" if k == "scope" else k): v for k, v in filters.query().items()}
    values = {k: (params.get(k) or "") for k in ("team", "process", "task", "person", "due", "within", "sort",
                                                 "order")}
    if not values["within"]:
        values["within"] = str(task_api.DEFAULT_WITHIN)
    tabs = {v: urlencode({**{k: x for k, x in query.items() if k != "view"}, "view": v})
            for v in ("mine", "team", "delegated")}
    resp = kit.render(request, "tasks.html", {
        "user": user, "view": filters.scope, "rows": rows, "names": names, "page": page,
        "has_next": len(result["tasks"]) > PAGE_SIZE, "counts": result["counts"], "flash": flash,
        "today": kit.long_date(now),
        "errors": [{"text": e["message"], "href": "#" + INBOX_FIELDS.get(e["field"], "f-view")} for e in errors],
        "error_fields": {e["field"]: e["message"] for e in errors}, "values": values,
        "teams": sorted(user.teams), "processes": _processes(engine), "filtered": bool(set(query) - {"view"}),
        "tabs": tabs, "page_query": lambda n: urlencode({**query, "view": filters.scope, "page": n}),
        "sorts": [("due", "Due date"), ("follow_up", "Follow-up date"), ("created", "Date created"),
                  ("person", "Person"), ("task", "Task")],
        "dues": [("", "Any time"), ("overdue", "Overdue"), ("soon", "Due soon"), ("none", "No due date"),
                 ("follow_up", "Follow-up due")]},
        422 if errors else 200)
    if flash:
        resp.delete_cookie(FLASH_COOKIE, path="/tasks")
    return resp


def people_names(engine: Any, usernames: Any) -> dict[str, str]:
    """Each username's display name ("rosa" -> "Rosa Patel"), read at once; a name not found stays as it is. The
    inbox and task pages say who has a task by name, as the chronology does, and that someone's account is
    deactivated (a leaver's tasks stay with them until a team manager gives them to someone else)."""
    wanted = sorted({u for u in usernames if u})
    if not wanted:
        return {}
    with engine.db.engine.connect() as conn:
        found = {r.username: r.display_name + ("" if r.active else " (account deactivated)") for r in conn.execute(
            select(users.c.username, users.c.display_name, users.c.active).where(users.c.username.in_(wanted)))}
    return {u: found.get(u) or u for u in wanted}


async def _page_action(request: Request, task_id: str, act: Any, done: Any, kind: str | None = None) -> Response:
    """A task-page button: check the session, CSRF and revision, act through the API's rules, redirect.
    `kind` ("assign" or "delegate"): the form whose person is refused (422) gets the error, as the task page shows."""
    form = await kit.posted_form(request)
    user = None
    engine = request.app.state.engine
    try:
        user = kit.signed_in(request)
        kit.check_csrf(user, form)
        task_api.require_worker(user)
        rev = kit.one(form, "revision")
        revision = whole(rev)
        result = await run_in_threadpool(act, user, engine, form, revision)
    except ConflictError as exc:  # who did what to the task, and when, in plain words (never its id or an ISO time)
        return kit.error_page(request, user, 409, "This task has changed",
                              task_sections.conflict_words(engine, user, exc, "Nothing was changed."))
    except ApiError as exc:
        if exc.status == 422:
            try:
                task = task_api.authorised_task(engine, user, task_id)
            except Exception as exc2:  # noqa: BLE001
                return kit.guard(request, user, exc2)
            return _task_page_with(request, user, engine, task, kind, exc.message, kit.one(form, "to")[:64])
        return kit.guard(request, user, exc)
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, user, exc)
    url, message = done(user, result)
    return _flash(request, kit.redirect(url), message)


def _task_page_with(request: Request, user: User, engine: Any, task: dict[str, Any], kind: str | None, message: str,
                    chosen: str) -> Response:
    """The task page as it opens (a long form's task list, not every question), with the refused person's error
    beside the form it was sent from and in the error summary, linking to that form's select; the person chosen
    stays selected."""
    schema = _schema(engine, task)
    fields = fields_for(schema)
    draft = task.get("draft")
    fill(fields, prefill.answers_given_before(engine, task, schema) if draft is None else draft)
    fields = prefill.decide_each(engine, task, fields)
    listed = task_sections.task_list_context(engine, task) if task_sections.declared(engine, task) else {}
    text = message[:1].upper() + message[1:]
    ctx = _task_context(request, user, task, fields, to_error=text, to_chosen=chosen, **listed)
    kinds = (["delegate"] if ctx["can_delegate"] else []) + (["assign"] if ctx["can_assign"] else [])
    ctx["to_kind"] = kind if kind in kinds else (kinds[0] if kinds else None)
    ctx["errors"] = [{"text": text, "href": "#f-to" if ctx["to_kind"] in kinds[:1] else f"#f-to-{ctx['to_kind']}"}]
    return kit.render(request, "task.html", ctx, 422)


def _to(form: dict[str, list[str]]) -> str:
    to = kit.one(form, "to").strip()
    if not to:
        raise ApiError(422, "invalid", "select the person to give the task to")
    return to[:64]


def engine_of(request: Request) -> Any:
    return request.app.state.engine


def _person(engine: Any, t: dict[str, Any]) -> str:
    """Who has the task now, by name."""
    return people_names(engine, [t.get("assignee")]).get(t.get("assignee"), "nobody")


def _name(t: dict[str, Any]) -> str:
    return f"{t.get('name') or 'Task'} for {t.get('reference') or 'this case'}"


@router.post("/tasks/{task_id}/claim", response_class=HTMLResponse)
async def claim(request: Request, task_id: str) -> Response:
    return await _page_action(
        request, task_id,
        lambda user, engine, form, rev: task_api.claim(task_id, user, engine, task_api.Revision(revision=rev)),
        lambda user, t: (f"/tasks/{quote(task_id)}", f"You claimed {_name(t)}"))


@router.post("/tasks/{task_id}/release", response_class=HTMLResponse)
async def release(request: Request, task_id: str) -> Response:
    return await _page_action(
        request, task_id,
        lambda user, engine, form, rev: task_api.release(task_id, user, engine, task_api.Revision(revision=rev)),
        lambda user, t: ("/tasks?view=team", f"Released {_name(t)}: it is back in the team's queue"))


@router.post("/tasks/{task_id}/assign", response_class=HTMLResponse)
async def assign(request: Request, task_id: str) -> Response:
    return await _page_action(
        request, task_id,
        lambda user, engine, form, rev: task_api.assign(task_id, task_api.Target(to=_to(form), revision=rev),
                                                        user, engine),
        lambda user, t: (f"/tasks/{quote(task_id)}", f"Assigned {_name(t)} to {_person(engine_of(request), t)}"),
        "assign")


@router.post("/tasks/{task_id}/delegate", response_class=HTMLResponse)
async def delegate(request: Request, task_id: str) -> Response:
    return await _page_action(
        request, task_id,
        lambda user, engine, form, rev: task_api.delegate(task_id, task_api.Target(to=_to(form), revision=rev),
                                                          user, engine),
        lambda user, t: ("/tasks?view=delegated", f"Delegated {_name(t)} to {_person(engine_of(request), t)}"),
        "delegate")


@router.post("/tasks/{task_id}/return", response_class=HTMLResponse)
async def return_task(request: Request, task_id: str) -> Response:
    return await _page_action(
        request, task_id,
        lambda user, engine, form, rev: task_api.return_task(task_id, user, engine, task_api.Revision(revision=rev)),
        lambda user, t: ("/tasks?view=mine", f"Returned {_name(t)} to {_person(engine_of(request), t)}"))


# ---------------------------------------------------------------------- task page
def _people(engine: Any, task: dict[str, Any], exclude: str) -> list[tuple[str, str]]:
    """Active casework users in the task's team(s): who it can be assigned or delegated to."""

    from .auth import WORKER_ROLES, users

    groups = {g for g in [task.get("team"), *(task.get("candidate_groups") or [])] if g}
    out = []
    with engine.db.engine.connect() as conn:
        for r in conn.execute(select(users.c.username, users.c.display_name, users.c.teams, users.c.roles)
                              .where(users.c.active.is_(True)).order_by(users.c.display_name)):
            teams = json_set(r.teams)
            roles = json_set(r.roles)
            if teams & groups and roles & WORKER_ROLES and r.username != exclude:
                out.append((r.username, r.display_name))
    return out


def task_pause(engine: Any, task: dict[str, Any]) -> dict[str, str] | None:
    """Why this task cannot be completed now: its process is paused (a hospital admission, api/suspend.py), as the
    task page says it — {"text", "tag", "href"} — or None. Two reads by key, only on the task page."""
    from .suspend import SUSPENDABLE

    iid = task.get("instance_id")
    with engine.db.engine.connect() as conn:
        row = conn.execute(select(instances.c.status, instances.c.process_id).where(instances.c.id == iid)).first()
        if row is None or row.status != "suspended":
            return None
        pause = task_api.pauses(conn, [iid]).get(iid) or {}
    process = SUSPENDABLE.get(row.process_id) or str(row.process_id).replace("_", " ").capitalize()
    who = task.get("title") or "the person"
    since = kit.long_date(parse_instant(pause["since"])) if pause.get("since") else ""
    if pause.get("in_hospital"):
        admitted = pause.get("admitted_on")
        try:
            day = kit.long_date(parse_instant(admitted + "T12:00:00+00:00")) if admitted else since
        except ValueError:
            day = since
        where = ", ".join(x for x in (pause.get("hospital"), f"since {day}" if day else "") if x)
        text = (f"{process} is paused while {who} is in hospital" + (f" ({where})" if where else "") +
                ": record the discharge on the case record first. This task can be completed once the process "
                "goes on; nothing is due while it is paused.")
    else:
        text = (f"{process} is paused" + (f" (since {since})" if since else "") +
                (f": {pause['reason']}" if pause.get("reason") else "") +
                ". It must be resumed before this task can be completed.")
    return {"text": text, "tag": task_api.pause_tag(pause),
            "href": f"/cases/{task['case_id']}#process-{iid}"}


def _task_context(request: Request, user: User, task: dict[str, Any], fields: list[Field], **extra: Any
                  ) -> dict[str, Any]:
    engine = request.app.state.engine
    now = engine.now()
    me = user.username
    groups = {g for g in [task.get("team"), *(task.get("candidate_groups") or [])] if g}
    delegated_to_me = bool(task.get("delegated_by")) and task.get("assignee") == me
    mine = task.get("assignee") == me
    manager = "team_manager" in user.roles and bool(groups & user.teams)
    ctx = {"user": user, "task": task, "fields": fields, "errors": [], "conflict": None,
           "due_text": kit.long_date(task.get("due_at")), "tag": kit.due_tag(task.get("due_at"), now),
           "follow_text": kit.long_date(task.get("follow_up_at")),
           "follow_due": task.get("follow_up_at") is not None and task["follow_up_at"] <= now,
           "claimed_by_other": task.get("assignee") not in (None, me) and task.get("owner") != me,
           "delegated_to_me": delegated_to_me, "delegated_by_me": bool(task.get("delegated_by")) and
           task.get("owner") == me and not mine,
           "can_complete": task.get("assignee") in (None, me) and not delegated_to_me,
           "can_draft": mine, "can_delegate": mine and not delegated_to_me,
           "can_release": (mine and not delegated_to_me) or (manager and task.get("assignee")),
           "can_assign": manager, "to_error": None, "to_kind": None, "to_chosen": "",
           "flash": unquote(request.cookies.get(FLASH_COOKIE, "")),
           "has_draft": bool(task.get("draft")), "has_groups": any(f.kind == "group" for f in walk(fields))}
    ctx["names"] = people_names(engine, [task.get("assignee"), task.get("delegated_by"), task.get("owner")])
    ctx["paused"] = task_pause(engine, task)
    if ctx["paused"]:  # nothing is due and nothing can be completed until the process goes on
        ctx.update(can_complete=False, due_text="", tag=(ctx["paused"]["tag"], "govuk-tag--grey"))
    ctx["colleagues"] = _people(engine, task, me) if (ctx["can_delegate"] or manager) else []
    ctx["shown_data"] = task_sections.shown_data(engine, task, _schema(engine, task))  # what it decides on
    ctx.update(extra)
    ctx["case_panel"] = case_panel(engine, user, task["case_id"])  # None when they may not open the case
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
    page = kit.Page(request)
    try:
        user = page.open()
        task_api.require_worker(user)
        engine = page.engine
        task = task_api.authorised_task(engine, user, task_id)
    except Exception as exc:  # noqa: BLE001
        return page.guard(exc)
    schema = _schema(engine, task)
    fields = fields_for(schema)
    draft = task.get("draft")
    if draft is None:  # done again (a plan sent back): start from the answers given last time
        draft = prefill.answers_given_before(engine, task, schema)
    fill(fields, draft)
    fields = prefill.decide_each(engine, task, fields)  # what was decided before, to decide again
    # a long form (x-sections) shows its task list instead of every question (api/task_sections.py)
    listed = task_sections.task_list_context(engine, task) if task_sections.declared(engine, task) else {}
    resp = kit.render(request, "task.html", _task_context(request, user, task, fields, **listed))
    if request.cookies.get(FLASH_COOKIE):
        resp.delete_cookie(FLASH_COOKIE, path="/tasks")
    return resp


@router.post("/tasks/{task_id}", response_class=HTMLResponse)
async def complete(request: Request, task_id: str) -> Response:
    page = kit.Page(request)
    try:
        user = await page.post()
        task_api.require_worker(user)
        engine, form = page.engine, page.form
        task = await run_in_threadpool(task_api.authorised_task, engine, user, task_id)
    except ConflictError:
        return kit.error_page(request, page.user, 409, "This task has changed",
                           "Someone else completed or changed this task; nothing you typed was saved.")
    except Exception as exc:  # noqa: BLE001
        return page.guard(exc)
    fields = prefill.decide_each(engine, task, fields_for(_schema(engine, task)))
    action = (form.get("action") or ["complete"])[-1]
    rev = kit.one(form, "revision")
    revision = whole(rev)
    if action == "submit-answers":  # "Check your answers" of a long form: the saved answers
        return await task_sections.submit_answers(request, user, engine, task, revision)

    def again(status: int, messages: dict[str, str], general: list[str], conflict: str | None = None) -> Response:
        summary = set_errors(fields, messages)
        summary += [{"text": g, "href": None} for g in general]
        return kit.render(request, "task.html", _task_context(request, user, task, fields, errors=summary,
                                                            conflict=conflict), status)

    if action.startswith(("add:", "remove:")):
        # "Add another …" / "Remove": the same page with one item more or less, everything typed kept;
        # nothing is checked, saved or completed
        read_form(fields, form, keep_invalid=True)
        problem = change_items(fields, action[:400])
        if problem:
            return again(400, {}, [problem])
        return kit.render(request, "task.html", _task_context(request, user, task, fields))

    if action == "draft":
        data, _local = read_form(fields, form, keep_invalid=True)
        keep_unedited(fields, data, task.get("draft"))
        try:
            await run_in_threadpool(task_api.save_draft, task_id, task_api.Draft(data=data, revision=revision),
                                    user, engine)
        except ConflictError as exc:
            return again(409, {}, [], task_sections.conflict_words(engine, user, exc) + " What you typed is still "
                                      "below: copy anything you need, then go back to your tasks.")
        except Exception as exc:  # noqa: BLE001
            return kit.guard(request, user, exc)
        return _flash(request, kit.redirect("/tasks?view=mine"),
                      f"Draft saved: {_name(task)}. Open the task again to carry on.")

    data, local = read_form(fields, form)
    keep_unedited(fields, data, task.get("draft"))  # an address kept as lines stays lines when not changed
    paused = await run_in_threadpool(task_pause, engine, task)
    if paused:  # said before anything is checked: nothing can be completed while the process is paused
        return again(409, {}, [paused["text"]])
    if local:
        # check the rest too, without completing, so every error shows at once
        try:
            engine.forms.validate(task.get("form"), data, task=task_id)
            messages, general = {}, []
        except ValidationError as exc:
            messages, general = engine_errors(fields, exc.errors)
        return again(400, {**messages, **local}, general)
    try:
        await run_in_threadpool(task_api.complete_task, engine, user, task_id,
                                task_api.Completion(data=data, revision=revision))
    except ValidationError as exc:
        messages, general = engine_errors(fields, exc.errors)
        if not messages and not general:
            general = [str(exc)]
        return again(400, messages, general)
    except (ConflictError, StateError) as exc:
        paused = await run_in_threadpool(task_pause, engine, task) if isinstance(exc, StateError) else None
        if paused:  # paused after the page was checked
            return again(409, {}, [paused["text"]])
        return again(409, {}, [], "Someone else completed or changed this task since you opened it, so nothing "
                                  "was saved. What you typed is still below: copy anything you need, then go "
                                  "back to your tasks.")
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, user, exc)
    problem = await run_in_threadpool(stopped_after, engine, task)
    if problem:
        return stopped_page(request, user, task, problem)
    shown = task_sections.screening_page(request, user, engine, task)  # a contact: the advisor sees the outcome
    return shown or _flash(request, kit.redirect("/tasks?view=mine"), f"Task completed: {_name(task)}")


from . import task_sections  # noqa: E402 - its pages use this module's task context

router.include_router(task_sections.router)
