"""Who may see which task and open which case (the rules are described in docs/security.md).

* A task belongs to a team (its `team`, and any of its candidate groups). A user with a
  casework role sees and acts on the tasks of their own teams and the tasks assigned to them.
* A case record may be opened by a casework user who has one of its open tasks in their
  teams (or assigned to them) or who has worked on it (appears as an actor in its history),
  and by team managers and auditors.
* A restricted case may be opened only by the users named for it — whatever their role —
  and its tasks are hidden from everyone else.
* Every opening of a case record (and every refused one) is appended to `case_access_log`.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import and_, insert, or_, select

from engine.schema import events, tasks

from .auth import OVERSIGHT_ROLES, User, case_access_log, restricted_cases

# ---------------------------------------------------------------------- restricted cases


def _allowed(value: Any) -> set[str]:
    return set(json.loads(value) if isinstance(value, str) else value or [])


def restricted_map(conn: Any) -> dict[int, set[str]]:
    return {r.case_id: _allowed(r.allowed) for r in conn.execute(select(restricted_cases))}


def hidden_cases(conn: Any, user: User) -> list[int]:
    """The restricted cases this user is not named on."""
    return [cid for cid, allowed in restricted_map(conn).items() if user.username not in allowed]


def restriction(conn: Any, case_id: int) -> set[str] | None:
    row = conn.execute(select(restricted_cases.c.allowed).where(restricted_cases.c.case_id == case_id)).first()
    return None if row is None else _allowed(row.allowed)


def restrict_case(engine: Any, case_id: int, usernames: list[str]) -> None:
    """Make a case restricted to the named users (replacing any earlier list)."""
    with engine.db.transaction() as conn:
        existing = conn.execute(select(restricted_cases.c.case_id)
                                .where(restricted_cases.c.case_id == case_id)).first()
        allowed = sorted(set(usernames))
        if existing is None:
            conn.execute(insert(restricted_cases).values(case_id=case_id, allowed=allowed))
        else:
            conn.execute(restricted_cases.update().where(restricted_cases.c.case_id == case_id)
                         .values(allowed=allowed))


# ---------------------------------------------------------------------- tasks


def _like_group(team: str) -> str:
    return '%"' + team.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + '"%'


def task_filter(user: User, teams: set[str] | None = None, *, include_assigned: bool = True) -> Any:
    """SQL condition: tasks of `teams` (default: all the user's teams) or assigned to the user."""
    teams = user.teams if teams is None else teams
    conds = [tasks.c.team.in_(sorted(teams))] if teams else []
    conds += [tasks.c.candidate_groups.like(_like_group(t), escape="\\") for t in sorted(teams)]
    if include_assigned:
        conds.append(tasks.c.assignee == user.username)
    return or_(*conds) if conds else and_(tasks.c.id.is_(None), tasks.c.id.is_not(None))


def task_allowed(user: User, task: dict[str, Any]) -> bool:
    """May this user see and act on this open task (ignoring restriction, checked separately)?"""
    if not user.is_worker:
        return False
    if task.get("assignee") and task["assignee"] == user.username:
        return True
    groups = {task.get("team")} | set(task.get("candidate_groups") or [])
    return bool(groups & user.teams)


def case_of_task(conn: Any, task_id: str) -> int | None:
    """The case a (possibly finished) task belonged to, from its history."""
    row = conn.execute(select(events.c.case_id).where(
        events.c.type == "task.ready", events.c.data.like(f'%"task_id":"{task_id}"%')).limit(1)).first()
    return None if row is None else row.case_id


# ---------------------------------------------------------------------- cases


def can_open_case(engine: Any, user: User, case_id: int) -> tuple[bool, str]:
    """(allowed, reason when refused)."""
    with engine.db.engine.connect() as conn:
        allowed = restriction(conn, case_id)
        if allowed is not None:
            if user.username in allowed:
                return True, ""
            return False, "this case is restricted to named people"
        if user.has(*OVERSIGHT_ROLES):
            return True, ""
        if not user.is_worker:
            return False, "your role does not open case records"
        if conn.execute(select(tasks.c.id).where(tasks.c.case_id == case_id, task_filter(user))
                        .limit(1)).first() is not None:
            return True, ""
        if conn.execute(select(events.c.id).where(events.c.case_id == case_id, events.c.actor == user.username)
                        .limit(1)).first() is not None:
            return True, ""
    return False, "you have no task on this case and have not worked on it"


def log_access(engine: Any, case_id: int, user: User, action: str) -> None:
    with engine.db.transaction() as conn:
        now = engine.now(conn)
        conn.execute(insert(case_access_log).values(case_id=case_id, user=user.username, at=now, action=action))


def access_log(engine: Any, case_id: int) -> list[dict[str, Any]]:
    from engine.clock import as_utc

    with engine.db.engine.connect() as conn:
        rows = conn.execute(select(case_access_log).where(case_access_log.c.case_id == case_id)
                            .order_by(case_access_log.c.id)).all()
    return [{"case_id": r.case_id, "user": r.user, "at": as_utc(r.at), "action": r.action} for r in rows]
