"""Task list and task actions: only a team's members (or the task's assignee) see and act on a task.

The inbox query (`search_tasks`) and its filters (`parse_filters`) are shared with the pages
(api/pages.py), so the page and `GET /api/tasks` accept the same values and refuse the same
mistakes. Actions: claim, release, assign (team managers), delegate / return (delegate-and-return),
draft, complete — each checked here, then done by the engine, which re-checks the task's revision.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import and_, bindparam, case, func, or_, select, union
from starlette.concurrency import run_in_threadpool

from engine.clock import as_utc
from engine.driver_sql import Prepared
from engine.errors import ConflictError, NotFoundError
from engine.schema import cases, events, instances, restricted_cases, tasks, users
from engine.task_ops import _task_row

from . import inputs
from .access import (
    can_open_case,
    candidate_arm,
    case_of_task,
    escape_like,
    hidden_cases,
    log_access,
    may_act_on_restricted_task,
    shared_groups,
    shared_team_arm,
    task_allowed,
    task_filter,
)
from .auth import TEAMS, User, current_user, get_engine, json_set
from .errors import ApiError, forbidden

router = APIRouter(prefix="/api/tasks")

SCOPES = ("mine", "team", "delegated")
DUE = ("overdue", "soon", "none", "follow_up")
SORTS = ("due", "follow_up", "created", "person", "task")
ORDERS = ("asc", "desc")
DEFAULT_WITHIN = 2  # days: "due soon" (the inbox's tag uses the same)
MAX_TEXT = 100


def require_worker(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.is_worker:
        raise forbidden("Your role does not work on tasks.")
    return user


async def worker(user: Annotated[User, Depends(current_user)]) -> User:
    """`require_worker` as a route dependency, on the event loop (no worker-thread hop: api/auth.py)."""
    return require_worker(user)


def _row(r: Any) -> dict[str, Any]:
    d = dict(r._mapping)
    d["candidate_groups"] = json.loads(d["candidate_groups"])
    d["candidate_users"] = json.loads(d["candidate_users"]) if d.get("candidate_users") else []
    d["has_draft"] = d.pop("draft", None) is not None
    d["delegated_by"] = d["owner"] if d.get("owner") and d.get("owner") != d.get("assignee") else None
    for k in ("created_at", "due_at", "follow_up_at"):
        if d.get(k) is not None:
            d[k] = as_utc(d[k])
    return d


# ---------------------------------------------------------------------- paused processes (hospital admissions)
def suspended_instances(conn: Any) -> list[int]:
    """The ids of the process instances paused now (engine/suspension.py), read from the partial index
    `ix_instances_suspended` (migration 0031), which holds only those: the pauses of earlier years, long
    resumed, are not read (before, every `instance.suspended` event ever written was, on every inbox page).
    Few, so the inbox leaves their tasks out of its overdue and due-soon counts with a short `NOT IN` list."""
    return sorted(conn.execute(select(instances.c.id).where(instances.c.status == "suspended")).scalars())


def pauses(conn: Any, instance_ids: Any) -> dict[int, dict[str, Any]]:
    """Each paused instance's pause: {"since" (when it was recorded), "reason", "hospital", "admitted_on",
    "in_hospital"} from its last `instance.suspended` event (api/suspend.py writes the hospital details)."""
    ids = sorted(set(instance_ids))
    if not ids:
        return {}
    out: dict[int, dict[str, Any]] = {}
    for r in conn.execute(select(events.c.instance_id, events.c.at, events.c.data)
                          .where(events.c.type == "instance.suspended", events.c.instance_id.in_(ids))
                          .order_by(events.c.seq)):
        data = json.loads(r.data) if isinstance(r.data, str) else (r.data or {})
        details = data.get("details") if isinstance(data.get("details"), dict) else {}
        out[r.instance_id] = {"since": r.at, "reason": data.get("reason") or "",
                              "hospital": details.get("hospital") or "", "admitted_on": details.get("admitted_on"),
                              "in_hospital": details.get("kind") == "hospital_admission"}
    return out


def pause_tag(pause: dict[str, Any]) -> str:
    return "Paused: in hospital" if pause.get("in_hospital") else "Paused"


# ---------------------------------------------------------------------- filters
@dataclass
class Filters:
    scope: str = "team"
    team: str | None = None
    process: str | None = None
    task: str | None = None
    person: str | None = None
    due: str | None = None
    within: int = DEFAULT_WITHIN
    sort: str = "due"
    order: str = "asc"

    def query(self) -> dict[str, Any]:
        """The non-default values (to keep them in links)."""
        default = Filters()
        return {k: v for k, v in asdict(self).items() if v not in (None, "") and v != getattr(default, k)}


FILTER_NAMES = ("scope", "team", "process", "task", "person", "due", "within", "sort", "order")


def parse_filters(raw: dict[str, str | None]) -> tuple[Filters, list[dict[str, str]]]:
    """Query values → Filters, and a list of {field, message} for every value that is not allowed."""
    f = Filters()
    errors: list[dict[str, str]] = []

    def choice(name: str, allowed: tuple[str, ...], what: str) -> None:
        v = (raw.get(name) or "").strip()
        if not v:
            return
        if v not in allowed:
            errors.append({"field": name, "message": f"{what} must be one of: {', '.join(allowed)} "
                                                     f"(got '{v[:40]}')"})
        else:
            setattr(f, name, v)

    choice("scope", SCOPES, "The list")
    choice("team", TEAMS, "Team")
    choice("due", DUE, "Due")
    choice("sort", SORTS, "Sort by")
    choice("order", ORDERS, "Order")
    for name, what in (("process", "Process"), ("task", "Task"), ("person", "Person")):
        v = (raw.get(name) or "").strip()
        if len(v) > MAX_TEXT:
            errors.append({"field": name, "message": f"{what} must be {MAX_TEXT} characters or fewer"})
        elif v:
            setattr(f, name, v)
    w = (raw.get("within") or "").strip()
    if w:
        if not inputs.is_whole(w) or not 1 <= int(w) <= 365:
            errors.append({"field": "within", "message": f"Days must be a whole number from 1 to 365 (got '{w[:20]}')"})
        else:
            f.within = int(w)
    return f, errors


def _scope_cond(user: User, f: Filters, shared: dict[str, frozenset[str]]) -> Any:
    teams = {f.team} if f.team else None
    if f.scope == "mine":  # assigned to them, or offered to them by name and not yet claimed
        cond = or_(tasks.c.assignee == user.username,
                   and_(tasks.c.assignee.is_(None), candidate_arm(user.username)))
        return cond if f.team is None else and_(cond, task_filter(user, teams, include_assigned=False,
                                                                  shared=shared))
    if f.scope == "delegated":
        return and_(tasks.c.owner == user.username, tasks.c.assignee != user.username,
                    task_filter(user, teams, include_assigned=False, shared=shared))
    return task_filter(user, teams, include_assigned=f.team is None, shared=shared)


def _index_arms(user: User, f: Filters, shared: dict[str, frozenset[str]]) -> list[Any]:
    """The scope as conditions whose OR is `_scope_cond`, each one an index can answer in due order:
    one per team (`ix_tasks_team_due`), the user's own tasks (`ix_tasks_assignee_due`), and tasks that
    name one of the teams as a second candidate group. [] when the scope is not a plain union."""
    if f.scope != "team":
        return []
    teams = [f.team] if f.team else sorted(user.teams)
    arms: list[Any] = [tasks.c.team == t for t in teams]
    extra = shared_team_arm(set(teams), shared)
    if extra is not None:
        arms.append(extra)
    if f.team is None:
        arms.append(tasks.c.assignee == user.username)
        arms.append(candidate_arm(user.username))
    return arms


def _page_by_arms(conn: Any, arms: list[Any], conds: list[Any], limit: int, offset: int) -> list[Any]:
    """One page in due order (soonest first, none last; then created, id) as a UNION of the arms, each
    reading at most `offset + limit` rows from its index, instead of sorting every task of every team."""
    due = tasks.c.due_at.asc().nulls_last()
    parts = [select(tasks.c.id, tasks.c.due_at, tasks.c.created_at).where(arm, *conds)
             .order_by(due, tasks.c.created_at, tasks.c.id).limit(offset + limit).subquery()
             for arm in arms]
    u = union(*[select(p) for p in parts]).subquery()  # a task in two arms appears once
    page = (select(u.c.id).order_by(u.c.due_at.asc().nulls_last(), u.c.created_at, u.c.id)
            .limit(limit).offset(offset))
    q = (select(tasks, cases.c.reference, cases.c.title).join(cases, cases.c.id == tasks.c.case_id)
         .where(tasks.c.id.in_(page)).order_by(due, tasks.c.created_at, tasks.c.id))
    return conn.execute(q).all()


def search_tasks(engine: Any, user: User, f: Filters, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """One page of the inbox, with the counts (all within what this user may see)."""
    if f.team is not None and f.team not in user.teams:
        raise forbidden(f"you are not a member of the team '{f.team}'")
    with engine.db.engine.connect() as conn:
        now = engine.now(conn)
        soon = now + timedelta(days=f.within)
        shared = shared_groups(conn)
        hidden = hidden_cases(conn, user)
        conds = [_scope_cond(user, f, shared)]
        if hidden:
            conds.append(tasks.c.case_id.not_in(hidden))
        visible = list(conds[1:])
        paused_ids = suspended_instances(conn)  # nothing is overdue or due soon while its process is paused
        running = tasks.c.instance_id.not_in(paused_ids) if paused_ids else None
        if f.process:
            conds.append(tasks.c.process_id == f.process)
        if f.task:
            conds.append(or_(tasks.c.element_id == f.task,
                             func.lower(tasks.c.name).like(f"%{escape_like(f.task.lower())}%", escape="\\")))
        needs_case = False
        if f.person:
            needs_case = True
            p = escape_like(f.person.lower())
            conds.append(or_(func.lower(cases.c.reference).like(f"{p}%", escape="\\"),
                             func.lower(cases.c.title).like(f"%{p}%", escape="\\")))
        if f.due == "overdue":
            conds.append(_and_running(tasks.c.due_at < now, running))
        elif f.due == "soon":
            conds.append(_and_running(and_(tasks.c.due_at >= now, tasks.c.due_at <= soon), running))
        elif f.due == "none":
            conds.append(tasks.c.due_at.is_(None))
        elif f.due == "follow_up":  # the follow-up date has come (ix_tasks_follow_up_at)
            conds.append(tasks.c.follow_up_at <= now)

        desc = f.order == "desc"
        tie = [tasks.c.created_at.desc() if desc else tasks.c.created_at, tasks.c.id]
        arms = _index_arms(user, f, shared)
        if f.sort == "due" and not desc and not needs_case and len(arms) > 1:
            rows = _page_by_arms(conn, arms, conds[1:], limit, offset)
        else:
            key = {"due": [tasks.c.due_at], "follow_up": [tasks.c.follow_up_at], "created": [tasks.c.created_at],
                   "person": [cases.c.title, cases.c.reference], "task": [tasks.c.name]}[f.sort]
            key = [k.desc() if desc else k.asc() for k in key]
            if f.sort in ("due", "follow_up"):  # no date last, either way
                key = [k.nulls_last() for k in key]
            q = (select(tasks, cases.c.reference, cases.c.title).join(cases, cases.c.id == tasks.c.case_id)
                 .where(*conds).order_by(*key, *tie).limit(limit).offset(offset))
            rows = conn.execute(q).all()

        overdue = func.coalesce(func.sum(case((_and_running(tasks.c.due_at < now, running), 1), else_=0)), 0)
        due_soon = func.coalesce(func.sum(case((_and_running(and_(tasks.c.due_at >= now, tasks.c.due_at <= soon),
                                                              running), 1), else_=0)), 0)
        follow_up = func.coalesce(func.sum(case((tasks.c.follow_up_at <= now, 1), else_=0)), 0)
        me = user.username
        mine = func.coalesce(func.sum(case((or_(tasks.c.assignee == me, and_(tasks.c.assignee.is_(None),
                                                                                candidate_arm(me))), 1),
                                           else_=0)), 0)
        delegated = func.coalesce(func.sum(case((and_(tasks.c.owner == me, tasks.c.assignee != me), 1), else_=0)), 0)
        unfiltered = (f.scope == "team" and f.team is None and not (f.process or f.task or f.person or f.due))
        if unfiltered:  # the page's list is the team tab itself: one pass gives every count
            total, n_overdue, n_soon, n_follow, n_team, n_mine, n_delegated = conn.execute(select(
                func.count(), overdue, due_soon, follow_up, func.count(), mine, delegated).where(*conds)).one()
        else:
            cq = select(func.count(), overdue, due_soon, follow_up).select_from(
                tasks.join(cases, cases.c.id == tasks.c.case_id) if needs_case else tasks).where(*conds)
            total, n_overdue, n_soon, n_follow = conn.execute(cq).one()
            n_team, n_mine, n_delegated = conn.execute(select(func.count(), mine, delegated).where(
                task_filter(user, shared=shared), *visible)).one()
        out = [_row(r) for r in rows]
        paused = pauses(conn, [t["instance_id"] for t in out if t["instance_id"] in set(paused_ids)])
    for t in out:  # a paused process's task: its due date is frozen, it cannot be completed until the discharge
        pause = paused.get(t["instance_id"])
        t["paused"] = None if pause is None else {"tag": pause_tag(pause), "since": pause["since"],
                                                  "hospital": pause["hospital"], "admitted_on": pause["admitted_on"]}
    return {"tasks": out, "limit": limit, "offset": offset, "filters": asdict(f),
            "counts": {"total": int(total), "overdue": int(n_overdue), "due_soon": int(n_soon),
                       "follow_up": int(n_follow),
                       "team": int(n_team), "mine": int(n_mine), "delegated": int(n_delegated)}}


def _and_running(cond: Any, running: Any) -> Any:
    return cond if running is None else and_(cond, running)


@router.get("")
def list_tasks(request: Request, user: Annotated[User, Depends(worker)],
               engine: Annotated[Any, Depends(get_engine)]) -> dict[str, Any]:
    """GET /api/tasks?scope=&team=&process=&task=&person=&due=&within=&sort=&order=&limit=&offset="""
    params = request.query_params
    unknown = sorted(set(params) - set(FILTER_NAMES) - {"limit", "offset"})
    f, errors = parse_filters({k: params.get(k) for k in FILTER_NAMES})
    errors += [{"field": k, "message": f"unknown query parameter '{k[:40]}'"} for k in unknown]
    limit = offset = 0
    for name, lo, hi, default in (("limit", 1, 200, 50), ("offset", 0, 10_000_000, 0)):
        v = params.get(name, str(default)).strip()
        if not inputs.is_whole(v) or not lo <= int(v) <= hi:
            errors.append({"field": name, "message": f"{name} must be a whole number from {lo} to {hi}"})
        elif name == "limit":
            limit = int(v)
        else:
            offset = int(v)
    if errors:
        raise ApiError(422, "invalid", "the query is not valid: " + "; ".join(e["message"] for e in errors),
                       errors=errors)
    return search_tasks(engine, user, f, limit=limit, offset=offset)


# ---------------------------------------------------------------------- one task
# the open task, its case's reference and title (as `Engine.get_task` gives them) and the case's restriction,
# in one query on one connection (issue 14 item 4: the two reads it replaces cost more than the checks); through the
# driver on SQLite (engine/driver_sql.py: Core's own work was most of its cost in every completion)
_AUTHORISED_TASK = Prepared(select(tasks, cases.c.reference, cases.c.title,
                                   restricted_cases.c.allowed.label("restricted_to"))
                            .join(cases, cases.c.id == tasks.c.case_id)
                            .outerjoin(restricted_cases, restricted_cases.c.case_id == tasks.c.case_id)
                            .where(tasks.c.id == bindparam("id")))


def authorised_task(engine: Any, user: User, task_id: str) -> dict[str, Any]:
    """The open task, if this user may act on it; a finished task's conflict only for those who may see its case.

    The task's saved draft is kept (as `draft`) only for the person it is with and its owner."""
    try:
        UUID(task_id)
    except ValueError:
        raise NotFoundError(f"no open task {task_id}", task=task_id) from None
    with engine.db.engine.connect() as conn:
        row = _AUTHORISED_TASK.first(conn, {"id": task_id})
        if row is None:
            try:
                engine._raise_task_gone(conn, task_id)  # done (409), withdrawn (409) or never there (404)
            except ConflictError:
                case_id = case_of_task(conn, task_id)
                if case_id is None or not can_open_case(engine, user, case_id)[0]:
                    raise NotFoundError(f"no open task {task_id}", task=task_id) from None
                raise
    try:
        return _checked(user, _task_row(row))
    except HiddenTask as exc:
        log_access(engine, exc.case_id, user, "refused:task")
        raise


class HiddenTask(NotFoundError):
    """A task of a restricted case the user is not named on: answered word for word as an unknown task (its
    case's existence is not disclosed); the caller logs the refusal on the case's access log."""

    def __init__(self, task_id: str, case_id: int) -> None:
        super().__init__(f"no open task {task_id}", task=task_id)
        self.case_id = case_id


def _checked(user: User, task: dict[str, Any]) -> dict[str, Any]:
    """A task read with `_AUTHORISED_TASK`, if this user may act on it (404 for a restricted case's task to a
    user not named on it, as for an unknown task; 403 for another team's)."""
    allowed = task.pop("restricted_to")
    if allowed is not None and user.username not in json_set(allowed):
        raise HiddenTask(task["id"], task["case_id"])
    if not task_allowed(user, task):
        raise forbidden(f"this task belongs to the team '{task.get('team')}', which you are not a member of")
    return _public(task, user)


def _public(task: dict[str, Any], user: User) -> dict[str, Any]:
    if user.username not in (task.get("assignee"), task.get("owner")):
        task.pop("draft", None)
    task["delegated_by"] = task["owner"] if task.get("owner") and task["owner"] != task.get("assignee") else None
    return task


def _named(engine: Any, task: dict[str, Any], exc: ConflictError) -> ConflictError:
    """A stale-revision conflict, saying who changed the task last and how."""
    if "changed since you opened it" not in exc.message and "at the same moment" not in exc.message:
        return exc
    with engine.db.engine.connect() as conn:
        last = conn.execute(select(events.c.actor, events.c.type, events.c.at, events.c.data).where(
            events.c.case_id == task["case_id"], events.c.type.like("task.%"),
            events.c.data.like(f'%"task_id":"{task["id"]}"%')).order_by(events.c.id.desc()).limit(1)).first()
    if last is None:
        return exc
    what = last.type.removeprefix("task.").replace("_", " ")
    data = json.loads(last.data) if isinstance(last.data, str) else (last.data or {})
    to = data.get("assignee") if last.type in ("task.assigned", "task.delegated", "task.returned") else None
    return ConflictError(f"task {task['id']} changed since you opened it: {last.actor} {what} it"
                         + (f" to {to}" if to else "") + f" at {last.at}; nothing was saved — reload and try again",
                         task=task["id"], changed_by=last.actor, change=last.type, at=str(last.at), to=to)


def unchanged(engine: Any, task: dict[str, Any], revision: int | None) -> None:
    """Refuse a page or request sent with the revision the task had when it was opened, now stale: the 409 naming
    who changed it and how, before any check on who may act. A worker whose task a manager has just given to
    someone else is told that (and the page keeps what they typed), not that they may not save it."""
    if revision is not None and task.get("revision") is not None and revision != task["revision"]:
        raise _named(engine, task, ConflictError(f"task {task['id']} changed since you opened it; reload and try "
                                                 "again", task=task["id"]))


def _act(engine: Any, task: dict[str, Any], user: User, fn: Any, *args: Any, **kw: Any) -> dict[str, Any]:
    try:
        return _public(fn(*args, **kw), user)
    except ConflictError as exc:
        raise _named(engine, task, exc) from None


def _groups(task: dict[str, Any]) -> set[str]:
    return {g for g in [task.get("team"), *(task.get("candidate_groups") or [])] if g}


def colleague(engine: Any, task: dict[str, Any], username: str, what: str) -> None:
    """Refuse (422) a target who does not exist, is not active, is not named on the case's restriction (when it is
    restricted) or is not in the task's team."""
    with engine.db.engine.connect() as conn:
        row = conn.execute(select(users.c.username, users.c.display_name, users.c.active, users.c.teams,
                                  users.c.roles).where(users.c.username == username)).first()
    if row is None:
        raise ApiError(422, "invalid", f"there is no user '{username[:64]}' to {what} this task to",
                       errors=[{"field": "to", "message": f"no user '{username[:64]}'"}])
    # as the page's list of people shows them
    who = username if row.display_name in (None, "", username) else f"{row.display_name} ({username})"
    if not row.active:
        raise ApiError(422, "invalid", f"{who} is not an active user: choose someone else", errors=[
            {"field": "to", "message": f"{who} is not an active user"}])
    with engine.db.engine.connect() as conn:
        named = may_act_on_restricted_task(conn, task["case_id"], username)
    if not named:  # they could neither see nor finish it: the task would be stranded
        raise ApiError(422, "invalid", f"{who} is not named on this case's restriction: {what} the task to "
                       "someone named on it, or ask an administrator or team manager to name them",
                       errors=[{"field": "to", "message": f"{username} is not named on this case's restriction"}])
    teams = json_set(row.teams)
    if not teams & _groups(task) and username not in (task.get("candidate_users") or []):
        team = (task.get("team") or "").replace("_", " ")
        raise ApiError(422, "invalid", f"{who} is not in the {team} team, which this task belongs to",
                       errors=[{"field": "to", "message": f"{username} is not in the {team} team"}])


class Revision(BaseModel):
    revision: inputs.Revision | None = None


class Completion(BaseModel):
    data: dict[str, Any] = Field(default_factory=dict)
    revision: inputs.Revision | None = None


class Target(BaseModel):
    to: str = Field(min_length=1, max_length=64)
    revision: inputs.Revision | None = None


class Draft(BaseModel):
    data: dict[str, Any]
    revision: inputs.Revision | None = None


@router.get("/{task_id}")
def get_task(task_id: str, user: Annotated[User, Depends(worker)],
             engine: Annotated[Any, Depends(get_engine)]) -> dict[str, Any]:
    return authorised_task(engine, user, task_id)


def _rev(body: Any) -> int | None:
    return body.revision if body is not None else None


@router.post("/{task_id}/claim")
def claim(task_id: str, user: Annotated[User, Depends(worker)], engine: Annotated[Any, Depends(get_engine)],
          body: Revision | None = None) -> dict[str, Any]:
    task = authorised_task(engine, user, task_id)
    return _act(engine, task, user, engine.claim, task_id, user.username, expected_revision=_rev(body))


@router.post("/{task_id}/release")
def release(task_id: str, user: Annotated[User, Depends(worker)], engine: Annotated[Any, Depends(get_engine)],
            body: Revision | None = None) -> dict[str, Any]:
    task = authorised_task(engine, user, task_id)
    unchanged(engine, task, _rev(body))
    manager = "team_manager" in user.roles and bool(_groups(task) & user.teams)
    if task.get("delegated_by") and task.get("assignee") == user.username and not manager:
        raise forbidden(f"{task['delegated_by']} delegated this task to you: return it to them instead")
    if task.get("assignee") not in (None, user.username) and not manager:
        raise forbidden(f"only {task['assignee']} or a team manager can release this task")
    return _act(engine, task, user, engine.release, task_id, user.username, expected_revision=_rev(body))


@router.post("/{task_id}/assign")
def assign(task_id: str, body: Target, user: Annotated[User, Depends(worker)],
           engine: Annotated[Any, Depends(get_engine)]) -> dict[str, Any]:
    """A team manager gives a task of one of their teams to a member of the task's team."""
    task = authorised_task(engine, user, task_id)
    if "team_manager" not in user.roles:
        raise forbidden("only a team manager can assign tasks")
    if not _groups(task) & user.teams:
        raise forbidden(f"you do not manage the team '{task.get('team')}'")
    colleague(engine, task, body.to, "assign")
    return _act(engine, task, user, engine.assign, task_id, body.to, actor=user.username, owner=body.to,
                expected_revision=body.revision)


@router.post("/{task_id}/delegate")
def delegate(task_id: str, body: Target, user: Annotated[User, Depends(worker)],
             engine: Annotated[Any, Depends(get_engine)]) -> dict[str, Any]:
    """The person working on a task hands it to a colleague in its team and stays its owner."""
    task = authorised_task(engine, user, task_id)
    unchanged(engine, task, _rev(body))
    if task.get("assignee") != user.username:
        raise forbidden("only the person the task is assigned to can delegate it"
                        + (f" (it is with {task['assignee']})" if task.get("assignee") else ": claim it first"))
    if task.get("delegated_by"):
        raise forbidden(f"{task['delegated_by']} delegated this task to you: return it to them instead")
    if body.to == user.username:
        raise ApiError(422, "invalid", "choose someone else to delegate the task to",
                       errors=[{"field": "to", "message": "choose someone else"}])
    colleague(engine, task, body.to, "delegate")
    return _act(engine, task, user, engine.delegate, task_id, body.to, actor=user.username,
                expected_revision=_rev(body))


@router.post("/{task_id}/return")
def return_task(task_id: str, user: Annotated[User, Depends(worker)],
                engine: Annotated[Any, Depends(get_engine)], body: Revision | None = None) -> dict[str, Any]:
    """The delegate gives the task back to the person who delegated it (with any saved draft)."""
    task = authorised_task(engine, user, task_id)
    unchanged(engine, task, _rev(body))
    if task.get("assignee") != user.username or not task.get("delegated_by"):
        raise forbidden("only the person a task was delegated to can return it")
    return _act(engine, task, user, engine.return_task, task_id, actor=user.username,
                expected_revision=_rev(body))


@router.put("/{task_id}/draft")
def save_draft(task_id: str, body: Draft, user: Annotated[User, Depends(worker)],
               engine: Annotated[Any, Depends(get_engine)]) -> dict[str, Any]:
    """Keep what has been typed so far (not validated); only the person the task is with can."""
    task = authorised_task(engine, user, task_id)
    unchanged(engine, task, body.revision)
    if task.get("assignee") != user.username:
        raise forbidden("only the person the task is assigned to can save a draft"
                        + (f" (it is with {task['assignee']})" if task.get("assignee") else ": claim it first"))
    if len(json.dumps(body.data)) > 100_000:
        raise ApiError(413, "too_large", "the draft is too large (over 100,000 characters)")
    return _act(engine, task, user, engine.save_draft, task_id, body.data, actor=user.username,
                expected_revision=body.revision)


@router.post("/{task_id}/complete")
async def complete(task_id: str, body: Completion, user: Annotated[User, Depends(worker)],
                   request: Request) -> dict[str, Any]:
    # `async def` running its work in one worker thread: FastAPI would otherwise also check a plain `def`
    # route's answer in a worker thread of its own (one hop more per request; docs/performance.md); the engine
    # read from the app, not through `get_engine` (one dependency less to solve on the hottest route)
    return await run_in_threadpool(complete_task, request.app.state.engine, user, task_id, body)


def complete_task(engine: Any, user: User, task_id: str, body: Completion) -> dict[str, Any]:
    """`authorised_task`'s checks, and who may complete it, made in the completion's own transaction on the
    task as the engine found it open (one connection instead of two; docs/performance.md)."""
    try:
        UUID(task_id)
    except ValueError:
        raise NotFoundError(f"no open task {task_id}", task=task_id) from None
    seen: dict[str, Any] = {}

    def authorise(conn: Any) -> None:
        row = _AUTHORISED_TASK.first(conn, {"id": task_id})
        if row is None:  # gone since the engine read it (another transaction, on PostgreSQL)
            raise ConflictError(f"task {task_id} is no longer waiting to be done; reload the case", task=task_id)
        task = seen["task"] = _checked(user, _task_row(row))
        if task.get("delegated_by") and task.get("assignee") == user.username:
            raise forbidden(f"{task['delegated_by']} delegated this task to you: return it to them to complete")
        if task.get("assignee") not in (None, user.username):
            raise ConflictError(f"task {task_id} is claimed by {task['assignee']}; ask them or a team manager to "
                                "release it; nothing was saved", task=task_id)

    try:
        result = engine.complete_task(task_id, body.data, actor=user.username, expected_revision=body.revision,
                                      authorise=authorise)
    except HiddenTask as exc:
        log_access(engine, exc.case_id, user, "refused:task")
        raise
    except ConflictError as exc:
        if "task" not in seen:  # not open (done or withdrawn): said only to those who may see its case
            with engine.db.engine.connect() as conn:
                case_id = case_of_task(conn, task_id)
            if case_id is None or not can_open_case(engine, user, case_id)[0]:
                raise NotFoundError(f"no open task {task_id}", task=task_id) from None
            raise
        raise _named(engine, seen["task"], exc) from None
    return result.to_dict()
