"""Who may see which task and open which case (the rules are described in docs/security.md).

* A task belongs to a team (its `team`, and any of its candidate groups). A user with a
  casework role sees and acts on the tasks of their own teams, the tasks assigned to them and the
  tasks the diagram offers to them by name (candidate users), any one of whom may claim it.
* A case record may be opened by a casework user who has one of its open tasks in their
  teams (or assigned to them) or who has worked on it (appears as an actor in its history),
  and by team managers and auditors.
* A restricted case may be opened only by the users named for it — whatever their role —
  and its tasks are hidden from everyone else.
* Every opening of a case record (and every refused one) is appended to `case_access_log`.
"""

from __future__ import annotations

import json
import weakref
from contextvars import ContextVar
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select

from engine import pg_batch
from engine.driver_sql import Prepared
from engine.errors import NotFoundError
from engine.schema import cases, events, process_versions, tasks

from .auth import OVERSIGHT_ROLES, User, case_access_log, json_set, restricted_cases
from .errors import forbidden
from .inputs import to_id

# ---------------------------------------------------------------------- restricted cases


def _allowed(value: Any) -> set[str]:
    return json_set(value)


def restricted_map(conn: Any) -> dict[int, set[str]]:
    return {r.case_id: _allowed(r.allowed) for r in conn.execute(select(restricted_cases))}


def hidden_cases(conn: Any, user: User) -> list[int]:
    """The restricted cases this user is not named on."""
    return [cid for cid, allowed in restricted_map(conn).items() if user.username not in allowed]


# through the driver on SQLite (engine/driver_sql.py): read on every case page and every start
_RESTRICTION = Prepared(select(restricted_cases.c.allowed).where(restricted_cases.c.case_id == bindparam("case_id")))


def restriction(conn: Any, case_id: int) -> set[str] | None:
    """The names a case is restricted to, None when it is not restricted."""
    row = _RESTRICTION.first(conn, {"case_id": case_id})
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


# ---------------------------------------------------------------------- measures

# who reads the published measures and the cases behind them (api/measures.py, docs/measures.md)
MEASURES_ROLES = frozenset({"performance", "team_manager"})


def may_read_measures(user: User) -> bool:
    return bool(user.roles & MEASURES_ROLES)


# ---------------------------------------------------------------------- tasks


def escape_like(text: str) -> str:
    """`text` for a LIKE pattern with ESCAPE '\\': its own %, _ and \\ match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_group(team: str) -> str:
    return '%"' + escape_like(team) + '"%'


_SHARED_CACHE: weakref.WeakKeyDictionary[Any, tuple[int, dict[str, frozenset[str]]]] = weakref.WeakKeyDictionary()


def shared_groups(conn: Any) -> dict[str, frozenset[str]]:
    """For each team that is the first candidate group (`tasks.team`) of a user task that names several
    groups in a deployed process: the other groups that share that task. Read from the deployed
    definitions (`process_versions.info`), cached until the next deployment."""
    latest = conn.execute(select(func.max(process_versions.c.id))).scalar() or 0
    key = conn.engine
    hit = _SHARED_CACHE.get(key)
    if hit is not None and hit[0] == latest:
        return hit[1]
    out: dict[str, set[str]] = {}
    for info in conn.execute(select(process_versions.c.info)).scalars():
        for t in (json.loads(info).get("user_tasks") or {}).values():
            groups = list(t.get("candidate_groups") or [])
            if len(groups) > 1:
                out.setdefault(groups[0], set()).update(groups[1:])
    frozen = {k: frozenset(v - {k}) for k, v in out.items()}
    _SHARED_CACHE[key] = (latest, frozen)
    return frozen


def task_filter(user: User, teams: set[str] | None = None, *, include_assigned: bool = True,
                shared: dict[str, frozenset[str]] | None = None) -> Any:
    """SQL condition: tasks of `teams` (default: all the user's teams) or assigned to the user.

    A task belongs to every one of its candidate groups; `tasks.team` is the first of them (indexed).
    With `shared` (from `shared_groups`), every arm uses an index: `team IN (teams)`, `assignee = user`,
    and — only when a deployed task names several groups including one of `teams` — `team IN (the
    first groups of those tasks) AND candidate_groups LIKE …` (the LIKE only rechecks rows the team
    index found). Without it (a single case's tasks), the LIKE fallback is limited to tasks whose
    candidate groups list several teams."""
    teams = set(user.teams if teams is None else teams)
    conds = [tasks.c.team.in_(sorted(teams))] if teams else []
    likes = [tasks.c.candidate_groups.like(_like_group(t), escape="\\") for t in sorted(teams)]
    if shared is None:
        if likes:
            conds.append(and_(tasks.c.candidate_groups.like("%,%"), or_(*likes)))
    else:
        extra = shared_team_arm(teams, shared)
        if extra is not None:
            conds.append(extra)
    if include_assigned:
        conds.append(tasks.c.assignee == user.username)
        conds.append(candidate_arm(user.username))
    return or_(*conds) if conds else and_(tasks.c.id.is_(None), tasks.c.id.is_not(None))


def candidate_arm(username: str) -> Any:
    """SQL condition: tasks the diagram offers to this person by name (candidate users). Read from the small
    partial index over the tasks that name any (`ix_tasks_candidate_users`); the LIKE rechecks those rows."""
    return and_(tasks.c.candidate_users.is_not(None),
                tasks.c.candidate_users.like('%"' + escape_like(json.dumps(username)[1:-1]) + '"%', escape="\\"))


def shared_team_arm(teams: set[str], shared: dict[str, frozenset[str]]) -> Any:
    """Tasks that name one of `teams` as a second (third...) candidate group: `team IN (their first
    groups) AND candidate_groups LIKE ...` (the LIKE only rechecks rows the team index found); None
    when no deployed task shares one of these teams."""
    firsts = sorted(first for first, others in shared.items() if first not in teams and others & teams)
    if not firsts:
        return None
    return and_(tasks.c.team.in_(firsts),
                or_(*[tasks.c.candidate_groups.like(_like_group(t), escape="\\") for t in sorted(teams)]))


def is_user(engine: Any, name: str) -> bool:
    """Whether `name` is a user's (any user, when the database has none yet): a computed candidate user must be."""
    return bool(engine.is_user(name))


def task_allowed(user: User, task: dict[str, Any]) -> bool:
    """May this user see and act on this open task (ignoring restriction, checked separately)?"""
    if not user.is_worker:
        return False
    if task.get("assignee") and task["assignee"] == user.username:
        return True
    if user.username in (task.get("candidate_users") or []):  # offered to them by name
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
        return case_access(conn, user, case_id, restriction(conn, case_id))


# the reason `case_access` gives a user not named on a restricted case: answered as an unknown case (404)
RESTRICTED = "this case is restricted to named people"


def unknown_case(case_id: int) -> NotFoundError:
    """The answer to an unknown case id, word for word (api/cases.py `open_case`)."""
    return NotFoundError(f"no case {case_id}", case=case_id)


def case_exists(engine: Any, case_id: int) -> None:
    """404 for an unknown case (nothing to log: there is no case)."""
    with engine.db.engine.connect() as conn:
        exists = conn.execute(select(cases.c.id).where(cases.c.id == case_id)).first() is not None
    if not exists:
        raise unknown_case(case_id)


def refusal(case_id: int, reason: str) -> Exception:
    """The error for a refused case access: to a user not named on a restricted case the same 404 as an
    unknown id (its existence is not disclosed, docs/security.md "Restricted cases"); otherwise a 403."""
    return unknown_case(case_id) if reason == RESTRICTED else forbidden(reason)


def case_access(conn: Any, user: User, case_id: int, allowed: set[str] | None) -> tuple[bool, str]:
    """`can_open_case` on a connection already open, with the case's restriction already read (`allowed`:
    the names it is restricted to, None when it is not restricted)."""
    if allowed is not None:
        if user.username in allowed:
            return True, ""
        return False, RESTRICTED
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


OUTCOMES = ("allowed", "refused")
# the path of the request being served (set by the app's middleware, `request_page`): the `page` an access is
# logged from
current_page: ContextVar[str | None] = ContextVar("carepath_current_page", default=None)
# the access-log rows the request being served has written (a list set by the app's middleware, appended to
# by `write_access` — in whichever thread — and read by `log_unlogged_refusal` once the request is answered)
written: ContextVar[list[int] | None] = ContextVar("carepath_access_written", default=None)
# the path parameters that name a case, directly or through one of its tasks
CASE_PARAMS = ("case_id", "case_ref")
REFUSED_STATUSES = frozenset({403, 404})


def request_page(scope: Any) -> str | None:
    """A request's path (never its query, which may hold a person's name): the page `log_access` records an access
    as coming from (`current_page`, set for each request by the app's middleware, api/http_layer.py)."""
    return str(scope.get("path") or "")[:200] or None


async def log_unlogged_refusal(scope: Any, status: int, rows: list[int]) -> None:
    """The access log's backstop for refusals, run by the app's middleware once a request is answered: a request to
    a case-scoped route (a case id, or a task id, in its path) by a signed-in user that was answered 403 or 404
    without any access-log row having been written (`rows`, the `written` list of the request) — a role refused
    before the case was looked at, a form without its CSRF token, a task of a restricted case — gets one refused
    row on that case, when the case exists (`log_refused_request`)."""
    if status in REFUSED_STATUSES and not rows:
        params = scope.get("path_params") or {}
        if any(k in params for k in (*CASE_PARAMS, "task_id")):
            from starlette.concurrency import run_in_threadpool

            await run_in_threadpool(log_refused_request, scope, params)


def log_refused_request(scope: Any, params: dict[str, Any]) -> None:
    """One refused row for a request answered 403/404 on a case-scoped route that logged nothing itself: only
    for a signed-in user and a case that exists (an unknown id has no log to write to)."""
    from starlette.requests import Request

    from .auth import COOKIE

    app = scope.get("app")
    if app is None:
        return
    user = app.state.auth.session_user(Request(scope).cookies.get(COOKIE))
    if user is None:
        return
    engine = app.state.engine
    with engine.db.engine.connect() as conn:
        case_id = request_case(conn, params)
    if case_id is None:
        return
    route = scope.get("route")
    where = f"{scope.get('method', '')} {getattr(route, 'path', '')}".strip()
    log_access(engine, case_id, user, "request", reason=f"refused: {where}"[:200], outcome="refused")


def request_case(conn: Any, params: dict[str, Any]) -> int | None:
    """The existing case a request's path names: its case id, or the case of the task it names; else None."""
    for name in CASE_PARAMS:
        raw = str(params.get(name, ""))
        if raw:
            case_id = to_id(raw.upper().removeprefix("CASE-"))  # `Id`'s rule: out of range is no case
            if case_id is None:
                return None
            row = conn.execute(select(cases.c.id).where(cases.c.id == case_id)).first()
            return None if row is None else row.id
    task_id = str(params.get("task_id", ""))
    if not task_id or len(task_id) > 64:
        return None
    row = conn.execute(select(tasks.c.case_id).where(tasks.c.id == task_id)).first()
    if row is not None:
        return row.case_id
    return case_of_task(conn, task_id) if task_id.replace("-", "").isalnum() else None


def log_access(engine: Any, case_id: int, user: User, action: str, *, page: str | None = None,
               reason: str | None = None, outcome: str = "allowed") -> None:
    """Append one line to the case access log: who did `action` (open, search, export...) on which
    case, from which `page` (default: the path of the request being served), why (`reason`) and
    whether it was `allowed` or `refused`. An action written the older way, "refused:<action>", is
    stored as <action> with outcome 'refused'."""
    with engine.db.transaction() as conn:
        write_access(conn, engine, case_id, user, action, page=page, reason=reason, outcome=outcome)


def write_access(conn: Any, engine: Any, case_id: int, user: User, action: str, *, page: str | None = None,
                 reason: str | None = None, outcome: str = "allowed") -> None:
    """`log_access` in a transaction already open (it is committed, or rolled back, with that transaction)."""
    if action.startswith("refused:"):
        action, outcome = action[len("refused:"):], "refused"
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    page = page if page is not None else current_page.get()
    row = {"case_id": case_id, "user": user.username, "at": engine.now(conn), "action": action[:32],
           "page": None if page is None else page[:200], "reason": reason, "outcome": outcome}
    if engine.db.is_postgres:  # sent with the transaction's next statement or its COMMIT: no round trip of its own
        pg_batch.queue_statement(conn, _ACCESS_ROW.stmt, row)
    else:  # through the driver (engine/driver_sql.py)
        _ACCESS_ROW.run(conn, row)
    rows = written.get()
    if rows is not None:
        rows.append(case_id)


# its values are the parameters (built once, compiled once per dialect)
_ACCESS_ROW = Prepared(insert(case_access_log), ("case_id", "user", "at", "action", "page", "reason", "outcome"))


def entry_outcome(action: str, outcome: str | None) -> tuple[str, str]:
    """(action, outcome) of a stored row, rows written before revision 0006 included."""
    if action.startswith("refused:"):
        return action[len("refused:"):], "refused"
    return action, outcome or "allowed"


def access_log(engine: Any, case_id: int) -> list[dict[str, Any]]:
    """A case's access log, oldest first: who, when and what (a refusal as "refused:<action>"). The page,
    reason and outcome of each entry are read through api/audit.py (`read_log`)."""
    from engine.clock import as_utc

    with engine.db.engine.connect() as conn:
        rows = conn.execute(select(case_access_log).where(case_access_log.c.case_id == case_id)
                            .order_by(case_access_log.c.id)).all()
    out = []
    for r in rows:
        action, outcome = entry_outcome(r.action, r.outcome)
        out.append({"case_id": r.case_id, "user": r.user, "at": as_utc(r.at),
                    "action": f"refused:{action}" if outcome == "refused" else action})
    return out


# ---------------------------------------------------------------------- privileged access (docs/security.md)


def open_tasks_of_case(conn: Any, case_id: int) -> list[dict[str, Any]]:
    """The case's open tasks as `task_allowed` reads them (id, name, team, candidate groups and users, assignee)."""
    from engine.task_ops import _task_row

    return [_task_row(r) for r in conn.execute(select(tasks).where(tasks.c.case_id == case_id)
                                               .order_by(tasks.c.created_at, tasks.c.id))]


def named_users(conn: Any, usernames: Any) -> list[User]:
    """The active users among `usernames`."""
    from .auth import _user, users

    names = sorted(set(usernames))
    if not names:
        return []
    return [_user(r) for r in conn.execute(select(users).where(users.c.username.in_(names), users.c.active.is_(True)))]


def stranded_tasks(conn: Any, case_id: int, usernames: Any) -> list[dict[str, Any]]:
    """The case's open tasks that no one of `usernames` may act on, or that are with (assigned to) someone not
    among them: restricted to them, the case would hide these tasks from every queue, or leave them with someone
    who can no longer see, finish or release them."""
    names = set(usernames)
    people = named_users(conn, names)
    return [t for t in open_tasks_of_case(conn, case_id)
            if (t.get("assignee") and t["assignee"] not in names) or not any(task_allowed(u, t) for u in people)]


def coordinating_worker(conn: Any, case_id: int) -> str | None:
    """The username of the case's co-ordinating worker, if one is set."""
    row = conn.execute(select(cases.c.data).where(cases.c.id == case_id)).first()
    if row is None:
        return None
    value = (json.loads(row.data) if isinstance(row.data, str) else row.data or {}).get("coordinating_worker")
    return value if isinstance(value, str) and value else None


def may_act_on_restricted_task(conn: Any, case_id: int, username: str) -> bool:
    """Whether a task of this case may be given (assigned, delegated) to `username`: always when the case is not
    restricted, else only to someone named on the restriction (anyone else could neither see nor finish it)."""
    allowed = restriction(conn, case_id)
    return allowed is None or username in allowed
