"""Task list and task actions: only a team's members (or the task's assignee) see and act on a task."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from engine.clock import as_utc
from engine.errors import ConflictError, NotFoundError
from engine.schema import cases, tasks

from .access import can_open_case, case_of_task, hidden_cases, restriction, task_allowed, task_filter
from .auth import TEAMS, User, current_user, get_engine
from .errors import forbidden

router = APIRouter(prefix="/api/tasks")


def require_worker(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.is_worker:
        raise forbidden("your role does not work on tasks")
    return user


def _row(r: Any) -> dict[str, Any]:
    d = dict(r._mapping)
    d["candidate_groups"] = json.loads(d["candidate_groups"])
    d.pop("draft", None)
    for k in ("created_at", "due_at"):
        if d.get(k) is not None:
            d[k] = as_utc(d[k])
    return d


@router.get("")
def list_tasks(user: Annotated[User, Depends(require_worker)], engine: Annotated[Any, Depends(get_engine)],
               scope: Literal["mine", "team"] = "team", team: str | None = None,
               process: Annotated[str | None, Query(max_length=255)] = None,
               limit: Annotated[int, Query(ge=1, le=200)] = 50,
               offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    if team is not None and team not in user.teams:
        raise forbidden(f"you are not a member of the team '{team}'" if team in TEAMS else "unknown team")
    q = select(tasks, cases.c.reference, cases.c.title).join(cases, cases.c.id == tasks.c.case_id)
    if scope == "mine":
        q = q.where(tasks.c.assignee == user.username)
        if team is not None:
            q = q.where(task_filter(user, {team}, include_assigned=False))
    else:
        q = q.where(task_filter(user, {team} if team else None, include_assigned=team is None))
    if process:
        q = q.where(tasks.c.process_id == process)
    with engine.db.engine.connect() as conn:
        hidden = hidden_cases(conn, user)
        if hidden:
            q = q.where(tasks.c.case_id.not_in(hidden))
        q = q.order_by(tasks.c.due_at.is_(None), tasks.c.due_at, tasks.c.created_at, tasks.c.id)
        rows = conn.execute(q.limit(limit).offset(offset)).all()
    return {"tasks": [_row(r) for r in rows], "limit": limit, "offset": offset}


def authorised_task(engine: Any, user: User, task_id: str) -> dict[str, Any]:
    """The open task, if this user may act on it; a finished task's conflict only for those who may see its case."""
    try:
        UUID(task_id)
    except ValueError:
        raise NotFoundError(f"no open task {task_id}", task=task_id) from None
    try:
        task = engine.get_task(task_id)
    except ConflictError:
        with engine.db.engine.connect() as conn:
            case_id = case_of_task(conn, task_id)
        if case_id is None or not can_open_case(engine, user, case_id)[0]:
            raise NotFoundError(f"no open task {task_id}", task=task_id) from None
        raise
    with engine.db.engine.connect() as conn:
        allowed = restriction(conn, task["case_id"])
    if allowed is not None and user.username not in allowed:
        raise forbidden("this task belongs to a restricted case")
    if not task_allowed(user, task):
        raise forbidden(f"this task belongs to the team '{task.get('team')}', which you are not a member of")
    task.pop("draft", None)
    return task


class Revision(BaseModel):
    revision: int | None = None


class Completion(BaseModel):
    data: dict[str, Any] = Field(default_factory=dict)
    revision: int | None = None


@router.get("/{task_id}")
def get_task(task_id: str, user: Annotated[User, Depends(require_worker)],
             engine: Annotated[Any, Depends(get_engine)]) -> dict[str, Any]:
    return authorised_task(engine, user, task_id)


@router.post("/{task_id}/claim")
def claim(task_id: str, user: Annotated[User, Depends(require_worker)], engine: Annotated[Any, Depends(get_engine)],
          body: Revision | None = None) -> dict[str, Any]:
    authorised_task(engine, user, task_id)
    task = engine.claim(task_id, user.username, expected_revision=body.revision if body else None)
    task.pop("draft", None)
    return task


@router.post("/{task_id}/release")
def release(task_id: str, user: Annotated[User, Depends(require_worker)], engine: Annotated[Any, Depends(get_engine)],
            body: Revision | None = None) -> dict[str, Any]:
    task = authorised_task(engine, user, task_id)
    if task.get("assignee") not in (None, user.username) and "team_manager" not in user.roles:
        raise forbidden(f"only {task['assignee']} or a team manager can release this task")
    task = engine.release(task_id, user.username, expected_revision=body.revision if body else None)
    task.pop("draft", None)
    return task


@router.post("/{task_id}/complete")
def complete(task_id: str, body: Completion, user: Annotated[User, Depends(require_worker)],
             engine: Annotated[Any, Depends(get_engine)]) -> dict[str, Any]:
    task = authorised_task(engine, user, task_id)
    if task.get("assignee") not in (None, user.username):
        raise ConflictError(f"task {task_id} is claimed by {task['assignee']}; ask them or a team manager to "
                            "release it; nothing was saved", task=task_id)
    result = engine.complete_task(task_id, body.data, actor=user.username, expected_revision=body.revision)
    return result.to_dict()
